"""The read layer: Metroculus's three kubecost endpoints, the allocation API, rightsizing, and the assets and
clusters reconciled with the cloud bill, served from ClickHouse.

FastAPI (on Starlette, served by uvicorn): typed routes, an OpenAPI document generated from the code (which the
schema-driven fuzz tests read), and exception handlers that let every error keep Metroculus's exact shape:

    {"error": {"status_code": 400, "error_code": "OM0006", "reason": "Invalid end_date", "params": ["end_date"]}}

Check order: unknown path (404 OM0002) or method (405 OM0003), then the ``Secret`` header (401 OM0007 when
missing or empty, 403 OM0005 when wrong; compared in constant time), then the parameters in the order the
endpoint declares them (400 OM0008 when missing, OM0006 when invalid), as Metroculus parses them.
Every value is read without the blanks around it; a blank one is as if absent (``allocation.parameter``), but
for the dates and ``metrics``, which keep Metroculus's contract: invalid (docs/api.md, "Parameter values").

Every free-text parameter has a length limit (``MAX_LENGTH``: the OpenAPI document's ``maxLength`` and the check
read the one table), and a request target longer than ``MAX_TARGET_BYTES`` is refused (414) before anything else;
``server.py`` sets uvicorn so that the app sees every request up to that size.

Bodies are streamed: written in chunks as ClickHouse sends the rows, so the server's memory does not grow with
the window. The first chunk is ready before the status line goes out, so a ClickHouse failure at the start is
an error body: 503 when the store is unavailable (``TransientError``: clients retry), 500 when it rejected our
query (``TerminalError``: retrying cannot help); one later cuts the connection short (the client sees a broken
chunked body, never a shorter valid JSON).
"""

from __future__ import annotations

import contextlib
import csv
import hmac
import io
import itertools
import json
import re
from typing import Annotated, Any, Callable, Iterator

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import telemetry
from ..errors import TransientError, WorkerError
from ..read import allocation, assets, metroculus

log = structlog.get_logger(__name__)

PREFIX = "/metroculus/v2"
# Metroculus converts with int() after Tornado strips the value: digits, surrounding blanks ignored; a sign, a
# fraction or a date is invalid. 19 digits at most (beyond that no int64, and no hour stored).
UNIX_SECONDS = r"^[0-9]{1,19}$"
# Chunks of a streamed body: large enough that a 130 MB body is a few thousand writes, small enough to hold.
CHUNK_BYTES = 256 * 1024
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# The longest value of each free-text query parameter, in characters of the decoded value (a repeated parameter,
# as ``metrics`` may be, counts its values joined by commas); longer is 400 OM0006 naming it. The one table: the
# OpenAPI document's ``maxLength`` is written from it (``_document_required``) and ``Limited`` checks it as a
# handler reads the parameter. The other parameters are bounded by their patterns; ``filter`` also by its number
# of clauses (allocation.MAX_FILTER_CLAUSES).
MAX_LENGTH = {"cloud_account_id": 256, "metrics": 4096, "aggregate": 1024, "filter": 4096, "namespace": 253,
              "shareNamespaces": 4096, "shareLabels": 4096, "cluster": 256}
# A request target (path and query string, as sent) longer than this is refused before anything else: 414 with the
# error body. Every request of ASCII values within the limits above fits, URL-encoded (3 bytes a character). The
# HTTP layer takes heads of this size and its headers (server.py), so that the app sees every such request.
MAX_TARGET_BYTES = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, reason: str, params: list[str] | None = None):
        self.status, self.code, self.reason, self.params = status, code, reason, params or []


def missing(name: str) -> ApiError:
    return ApiError(400, "OM0008", f"{name} is not provided", [name])


def invalid(name: str) -> ApiError:
    return ApiError(400, "OM0006", f"Invalid {name}", [name])


def too_long() -> ApiError:
    """A request whose target (or head, at the HTTP layer) is longer than the server takes."""
    return ApiError(414, "OM0006", "Invalid request", ["request"])


def error_body(error: ApiError) -> dict[str, Any]:
    return {"error": {"status_code": error.status, "error_code": error.code, "reason": error.reason,
                      "params": error.params}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status)


class Limited:
    """The request's query parameters as the handlers read them (``get``, ``getlist``, like Starlette's
    ``QueryParams``), each checked against ``MAX_LENGTH`` when it is read: a longer value raises ``BadParameter``
    naming it (400 OM0006), in the order the handler checks its parameters."""

    def __init__(self, params):
        self.params = params

    def _checked(self, name: str, length: int) -> None:
        if length > MAX_LENGTH.get(name, length):
            raise allocation.BadParameter(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name, default)
        if value is not None:
            self._checked(name, len(value))
        return value

    def getlist(self, name: str) -> list[str]:
        values = self.params.getlist(name)
        self._checked(name, len(",".join(values)))
        return values


class TargetLimit:
    """ASGI middleware: a request target longer than ``MAX_TARGET_BYTES`` is 414 with the error body, before
    anything is read (the HTTP layer answers the same for a head too long to buffer: server.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and len(scope.get("raw_path") or b"") + 1 + len(scope.get("query_string") or b"") \
                > MAX_TARGET_BYTES:
            await error_response(too_long())(scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- response schemas (for the OpenAPI document; existing clients ignore extra keys) ---------------------------

class Point(BaseModel):
    timestamp: int
    value: float
    labels: dict[str, str]


class ErrorBody(BaseModel):
    status_code: int
    error_code: str
    reason: str
    params: list[str]


class ErrorResponse(BaseModel):
    error: ErrorBody


class Window(BaseModel):
    cloud_account_id: str
    start_date: int
    end_date: int


class MetricsResponse(Window):
    metrics: dict[str, list[Point]]


class CostSummary(BaseModel):
    total_cost: float
    cpu_cost: float
    ram_cost: float
    gpu_cost: float
    pv_cost: float
    network_cost: float
    load_balancer_cost: float
    management_cost: float
    idle_cost: float


class CostBreakdown(BaseModel):
    management_cost: float
    load_balancer_cost: float
    network_internet_cost: float
    network_region_cost: float
    network_zone_cost: float


class ClusterCostsResponse(Window):
    total_cost: float
    data_points: list[Point]
    summary: CostSummary
    breakdown: CostBreakdown


class SavingsResponse(Window):
    cpu_savings: list[Point]
    memory_savings: list[Point]


class ExpenseGroup(BaseModel, extra="allow"):
    """A group's row: ``timestamp``, one field per aggregated dimension (extra keys), then the figures."""

    timestamp: int
    cpu_cost: float
    ram_cost: float
    gpu_cost: float
    pv_cost: float
    network_cost: float
    lb_cost: float
    management_cost: float
    shared_cost: float
    idle_cost: float
    total_cost: float
    cpu_core_hours: float
    ram_byte_hours: float
    gpu_hours: float
    cpu_request_core_hours: float
    ram_request_byte_hours: float
    cpu_usage_core_hours: float | None
    ram_usage_byte_hours: float | None
    cpu_request_average_cores: float
    ram_request_average_bytes: float
    cpu_usage_average_cores: float | None
    ram_usage_average_bytes: float | None
    cpu_efficiency: float | None
    ram_efficiency: float | None
    total_efficiency: float | None


class ExpensesResponse(Window):
    aggregate: str
    step: str
    rows: list[ExpenseGroup]


class RightsizingRow(BaseModel):
    cluster: str
    namespace: str
    controllerKind: str
    controller: str
    container: str
    replicas: float
    current_cpu: float
    current_memory: float
    usage_cpu: float | None
    usage_memory: float | None
    recommended_cpu: float | None
    recommended_memory: float | None
    cpu_saving: float | None
    memory_saving: float | None
    saving: float | None


class RightsizingResponse(Window):
    algorithm: str
    targetCPUUtilization: float
    targetRAMUtilization: float
    q: float
    rows: list[RightsizingRow]


class AssetRow(BaseModel):
    """A node or volume in one billing period (docs/api.md, "k8s_assets")."""

    timestamp: int
    period_end: int
    type: str
    cluster: str
    name: str
    providerID: str
    hours: int
    list_cost: float
    billed_cost: float
    adjustment: float
    factor: float
    matched: bool
    reconciled: bool
    bill_lines: int


class AssetsResponse(Window):
    rows: list[AssetRow]


class ClusterRow(BaseModel):
    cluster: str
    list_cost: float
    reconciled_cost: float | None
    matched_list_cost: float
    matched_billed_cost: float


class ClustersResponse(Window):
    rows: list[ClusterRow]


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 403, 414, 500, 503)}
# format=csv answers text/csv: one header line, then the JSON rows' values
WITH_CSV = {**ERRORS, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}
# Constraints are documented (json_schema_extra) but checked by the handlers themselves, so that the checks run in
# Metroculus's order (authorization first) and fail with its error codes, not with FastAPI's 422.
SecretHeader = Annotated[str | None, Header(alias="Secret", description="The cluster secret")]
TimeParam = Annotated[str | None, Query(description="unix seconds", json_schema_extra={"pattern": UNIX_SECONDS})]
FlagParam = Annotated[str | None, Query(description="true or false (default)",
                                         json_schema_extra={"pattern": "^(true|false|1|0|yes|no)$"})]
FractionParam = Annotated[str | None, Query(description="a number in (0, 1]; q: in [0, 1]",
                                            json_schema_extra={"pattern": r"^(0|1|0?\.[0-9]{1,6}|1\.0{1,6})$"})]
FormatParam = Annotated[str | None, Query(description="json (default) or csv", json_schema_extra={"pattern": "^(json|csv)$"})]
_DIMENSION = r"(cluster|node|namespace|controllerKind|controller|pod|container|service|workload|label:[a-zA-Z_][a-zA-Z0-9_]*)"
AGGREGATE_PATTERN = f"^{_DIMENSION}(,{_DIMENSION})*$"
TenantParam = Annotated[str | None, Query(description="cloud account id", json_schema_extra={"minLength": 1})]


def create_app(reader, cluster_secret: str, ready: Callable[[], bool] = lambda: True) -> FastAPI:
    """``reader`` runs SQL on ClickHouse (the sink's ``ReadClients``: ``query`` returns the rows, ``stream``
    yields them), and is closed when the server shuts down; ``ready()`` says whether ClickHouse answers with every
    migration applied (``/readyz``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        # chDB binds a process to the path its open clients use: a read API stopped beside a worker lets go of it
        reader.close()

    # redirect_slashes off: a trailing slash is an unknown path (404 OM0002, as Metroculus answers), not a 307
    # before authentication with a Location built from the request's Host header
    app = FastAPI(title="kubecost_worker read API", version="1", openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None, redirect_slashes=False, lifespan=lifespan)
    app.state.reader, app.state.secret, app.state.ready = reader, cluster_secret.encode(), ready
    app.add_middleware(TargetLimit)
    for error_class, handler in ERROR_HANDLERS:
        app.add_exception_handler(error_class, handler)
    for path in telemetry.HEALTH_PATHS:
        app.add_api_route(path, health, methods=["GET"], include_in_schema=False)
    app.include_router(routes)
    app.openapi = lambda: _document_required(app)
    return app


# -- errors: every one in Metroculus's shape ----------------------------------------------------------------------

async def on_api_error(_request: Request, error: ApiError) -> JSONResponse:
    return error_response(error)


async def on_bad_parameter(_request: Request, error: allocation.BadParameter) -> JSONResponse:
    return error_response(missing(error.name) if isinstance(error, allocation.MissingParameter)
                          else invalid(error.name))


async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 405:
        return error_response(ApiError(405, "OM0003", f"{request.method} method not allowed", [request.method]))
    return error_response(ApiError(404, "OM0002", "Not found"))


# ClickHouse's failures come classified from where they enter (store.client.classified): the store unavailable
# or overloaded is a TransientError, a 503 clients retry; anything else (above all our own query rejected: its
# syntax, size, names or types) is a 500 that no retry can fix
async def on_store_unavailable(_request: Request, error: TransientError) -> JSONResponse:
    return error_response(ApiError(503, "OM0001", "Service unavailable"))


async def on_query_rejected(request: Request, error: WorkerError) -> JSONResponse:
    log.error("read failed: ClickHouse rejected the query", path=request.url.path, error=str(error))
    return error_response(ApiError(500, "OM0001", "Internal error"))


async def on_bug(_request: Request, error: Exception) -> JSONResponse:
    # a bug, or a value no JSON can hold (a NaN stored before the commit check existed): still the error shape,
    # never Starlette's plain-text page
    return error_response(ApiError(500, "OM0001", "Internal error"))


ERROR_HANDLERS = ((ApiError, on_api_error), (allocation.BadParameter, on_bad_parameter),
                  (StarletteHTTPException, on_http_error), (TransientError, on_store_unavailable),
                  (WorkerError, on_query_rejected), (Exception, on_bug))


def health(request: Request) -> Response:
    status, body, content_type = telemetry.health_answer(request.url.path, request.app.state.ready)
    return Response(body, status_code=status, media_type=content_type)


# -- what every endpoint reads first ------------------------------------------------------------------------------

def authorize(request: Request) -> None:
    secret = request.headers.get("Secret")
    if not secret:
        raise ApiError(401, "OM0007", "This resource requires authorization")
    if not hmac.compare_digest(secret.encode(), request.app.state.secret):
        raise ApiError(403, "OM0005", "Bad secret")


def window(request: Request, params: Limited) -> tuple[str, int, int]:
    """Authorization first, then cloud_account_id, start_date, end_date, as Metroculus checks them: a value
    missing (or, for the id, blank) is OM0008, a date that is not a non-negative integer (a blank one too) is
    OM0006. Stricter than Metroculus: ``end_date`` before ``start_date`` is OM0006, and so is an id longer than
    its limit."""
    authorize(request)
    tenant = allocation.parameter(params, "cloud_account_id")
    if tenant is None:
        raise missing("cloud_account_id")
    bounds = []
    for name in ("start_date", "end_date"):
        raw = params.get(name)
        if raw is None:
            raise missing(name)
        digits = raw.strip()
        if not re.fullmatch(UNIX_SECONDS, digits):
            raise invalid(name)
        bounds.append(int(digits))
    start, end = bounds
    if end < start:
        raise invalid("end_date")
    return tenant, start, end


def wants_csv(params: Limited) -> bool:
    return allocation.parse_choice("format", params.get("format"), ("json", "csv")) == "csv"


def reader_of(request: Request):
    return request.app.state.reader


# -- answers --------------------------------------------------------------------------------------------------------

def envelope(tenant: str, start: int, end: int, **body: Any) -> Response:
    # Written here, not validated against the response model (which documents it): a year's answer can hold 10^7
    # points, and model validation would cost more than the query.
    chunks = chunked(json_pieces({"cloud_account_id": tenant, "start_date": start, "end_date": end, **body}))
    first = next(chunks)  # runs the first query: a failure here is still a 503 with an error body
    return StreamingResponse(itertools.chain((first,), chunks), media_type="application/json")


def answer(tenant: str, start: int, end: int, rows: Iterator[dict[str, Any]], columns: tuple[str, ...],
           csv_format: bool, **body: Any) -> Response:
    """The rows in the JSON envelope, or as CSV: a header line of ``columns``, then a line per row."""
    if not csv_format:
        return envelope(tenant, start, end, **body, rows=metroculus.RawJson(json_array(rows)))
    chunks = chunked(csv_lines(columns, rows))
    first = next(chunks)
    return StreamingResponse(itertools.chain((first,), chunks), media_type="text/csv; charset=utf-8")


# -- the endpoints ------------------------------------------------------------------------------------------------
# The parameters a handler declares document it (the OpenAPI document); it reads them itself from the request, in
# the order above.

routes = APIRouter()


@routes.get(f"{PREFIX}/kubecost_metrics", response_model=MetricsResponse, responses=ERRORS)
def kubecost_metrics(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                     start_date: TimeParam = None, end_date: TimeParam = None,
                     metrics: Annotated[str | None, Query(description="comma-separated metric names")] = None):
    """Hourly means of the stored ``kubecost_*`` series, optionally only the named ones."""
    params = Limited(request.query_params)
    tenant, start, end = window(request, params)
    values = params.getlist("metrics")
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    if values and (not names or not all(METRIC_NAME.fullmatch(n) for n in names)):
        raise invalid("metrics")
    return envelope(tenant, start, end,
                    metrics=metroculus.kubecost_metrics(reader_of(request), tenant, start, end, names))


@routes.get(f"{PREFIX}/kubecost_cluster_costs", response_model=ClusterCostsResponse, responses=ERRORS)
def kubecost_cluster_costs(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                           start_date: TimeParam = None, end_date: TimeParam = None):
    """The cluster's full cost per hour (every row of ``k8s_expenses_current``), their sum and a summary."""
    tenant, start, end = window(request, Limited(request.query_params))
    return envelope(tenant, start, end, **metroculus.cluster_costs(reader_of(request), tenant, start, end))


@routes.get(f"{PREFIX}/kubecost_savings", response_model=SavingsResponse, responses=ERRORS)
def kubecost_savings(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                     start_date: TimeParam = None, end_date: TimeParam = None):
    """Hourly rightsizing savings (cores and bytes that could be reclaimed)."""
    tenant, start, end = window(request, Limited(request.query_params))
    return envelope(tenant, start, end, **metroculus.savings(reader_of(request), tenant, start, end))


@routes.get(f"{PREFIX}/k8s_expenses", response_model=ExpensesResponse, responses=WITH_CSV)
def k8s_expenses(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                 start_date: TimeParam = None, end_date: TimeParam = None,
                 aggregate: Annotated[str | None, Query(
                     description="comma-separated: cluster, node, namespace, controllerKind, controller, pod, "
                                 "container, service, label:<key> (workload = namespace,controllerKind,controller)",
                     json_schema_extra={"pattern": AGGREGATE_PATTERN})] = None,
                 filter: Annotated[str | None, Query(
                     description='OpenCost filter subset: field:"a","b" (!: none of, ~: prefix), clauses joined '
                                 f'by + (at most {allocation.MAX_FILTER_CLAUSES})')] = None,
                 namespace: Annotated[str | None, Query()] = None,
                 step: Annotated[str | None, Query(description="hour, day, week (from Monday, UTC), month or "
                                                               "window (default)",
                                                   json_schema_extra={"pattern": "^(hour|day|week|month|window)$"})] = None,
                 shareIdle: FlagParam = None, idleByNode: FlagParam = None, shareTenancyCosts: FlagParam = None,
                 shareNamespaces: Annotated[str | None, Query(description="comma-separated namespaces")] = None,
                 shareLabels: Annotated[str | None, Query(description="comma-separated <key>:<value>")] = None,
                 shareSplit: Annotated[str | None, Query(json_schema_extra={"pattern": "^(weighted|even)$"})] = None,
                 reconcile: Annotated[str | None, Query(
                     description="true: the costs reconciled with the cloud bill (k8s_expenses_reconciled_current); "
                                 "false (default): list prices",
                     json_schema_extra={"pattern": "^(true|false|1|0|yes|no)$"})] = None,
                 format: FormatParam = None):
    """Costs, shares, usage and efficiency grouped like OpenCost's allocation API, per step."""
    params = Limited(request.query_params)
    tenant, start, end = window(request, params)
    parsed = allocation.parse_request(params)
    csv_format = wants_csv(params)
    rows = allocation.allocation(reader_of(request), parsed, tenant, start, end)
    columns = ("timestamp", *parsed.field_names, *allocation.ROW_FIGURES)
    return answer(tenant, start, end, rows, columns, csv_format, aggregate=",".join(parsed.field_names),
                  step=parsed.step)


@routes.get(f"{PREFIX}/k8s_rightsizing", response_model=RightsizingResponse, responses=WITH_CSV)
def k8s_rightsizing(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                    start_date: TimeParam = None, end_date: TimeParam = None,
                    targetCPUUtilization: FractionParam = None, targetRAMUtilization: FractionParam = None,
                    algorithm: Annotated[str | None, Query(json_schema_extra={"pattern": "^(max|quantile)$"})] = None,
                    q: FractionParam = None, format: FormatParam = None):
    """Container request recommendations from the stored hourly usage maxima, with their monthly saving."""
    params = Limited(request.query_params)
    tenant, start, end = window(request, params)
    parsed = allocation.parse_rightsizing(params)
    csv_format = wants_csv(params)
    rows = allocation.rightsizing(reader_of(request), parsed, tenant, start, end)
    return answer(tenant, start, end, iter(rows), allocation.RIGHTSIZING_FIELDS, csv_format,
                  algorithm=parsed.algorithm, targetCPUUtilization=parsed.target_cpu,
                  targetRAMUtilization=parsed.target_ram, q=parsed.q)


@routes.get(f"{PREFIX}/k8s_assets", response_model=AssetsResponse, responses=WITH_CSV)
def k8s_assets(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
               start_date: TimeParam = None, end_date: TimeParam = None,
               type: Annotated[str | None, Query(description="node or volume (default: both)",
                                                 json_schema_extra={"pattern": "^(node|volume)$"})] = None,
               cluster: Annotated[str | None, Query(description="one cluster id (default: every cluster)")] = None,
               format: FormatParam = None):
    """Nodes and volumes per billing period (the hour, or the UTC day where the bill is daily) with their list
    cost, billed cost and reconciliation factor (OpenCost's assets, reconciled with the cloud bill)."""
    params = Limited(request.query_params)
    tenant, start, end = window(request, params)
    parsed = assets.parse_assets(params)
    csv_format = wants_csv(params)
    return answer(tenant, start, end, assets.assets(reader_of(request), parsed, tenant, start, end),
                  assets.ASSET_FIELDS, csv_format)


@routes.get(f"{PREFIX}/k8s_clusters", response_model=ClustersResponse, responses=WITH_CSV)
def k8s_clusters(request: Request, secret: SecretHeader = None, cloud_account_id: TenantParam = None,
                 start_date: TimeParam = None, end_date: TimeParam = None, format: FormatParam = None):
    """The tenant's clusters with their cost over the window: at list price, and reconciled with the cloud bill
    where it is."""
    params = Limited(request.query_params)
    tenant, start, end = window(request, params)
    csv_format = wants_csv(params)
    return answer(tenant, start, end, iter(assets.clusters(reader_of(request), tenant, start, end)),
                  assets.CLUSTER_FIELDS, csv_format)


def json_pieces(value: Any) -> Iterator[bytes]:
    """``value`` as JSON text in pieces; ``RawJson`` values (JSON text as stored, or written as rows stream in)
    are passed on as they are. Never emits NaN or Infinity: those are not JSON."""
    if isinstance(value, metroculus.RawJson):
        yield from value
    elif isinstance(value, dict) and any(isinstance(v, (metroculus.RawJson, dict)) for v in value.values()):
        separator = b"{"
        for key, item in value.items():
            yield separator + json.dumps(key).encode() + b":"
            yield from json_pieces(item)
            separator = b","
        yield b"}"
    else:
        yield json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def chunked(pieces: Iterator[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The pieces joined into chunks of about ``size`` bytes: one write per chunk, not per point."""
    buffer: list[bytes] = []
    held = 0
    for piece in pieces:
        buffer.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    yield b"".join(buffer)


def json_array(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    separator = b"["
    for row in rows:
        yield separator + orjson.dumps(row)
        separator = b","
    yield b"[]" if separator == b"[" else b"]"


def csv_lines(columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """One header line, then a line per row with the JSON row's values (an empty field for null)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(row[c]) for c in columns])
        if buffer.tell() >= CHUNK_BYTES // 4:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def csv_value(value: Any) -> Any:
    """A JSON row's value as its CSV field: null empty, a float exactly (repr), a bool as JSON writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else value


REQUIRED = {"cloud_account_id", "start_date", "end_date", "aggregate", "Secret"}


def _document_required(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the parameters every request needs marked required (and not nullable), and each
    limited parameter's ``maxLength`` from ``MAX_LENGTH``; the handlers check them themselves, in Metroculus's order
    and with its error codes."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path in schema["paths"].values():
            for parameter in path.get("get", {}).get("parameters", []):
                if parameter["name"] in REQUIRED:
                    parameter["required"] = True
                    declared = parameter["schema"]
                    parameter["schema"] = {**{k: v for k, v in declared.items() if k != "anyOf"}, "type": "string"}
                if parameter["in"] == "query" and parameter["name"] in MAX_LENGTH:
                    parameter["schema"]["maxLength"] = MAX_LENGTH[parameter["name"]]
        app.openapi_schema = schema
    return app.openapi_schema
