"""``read/allocation.py``'s parameters as pure functions: ``aggregate``, ``filter``, the sharing and rightsizing
parameters and their errors, as the API receives them (a ``+`` sent as is or encoded, blanks around values); which
table answers which request. Its answers in chDB: ``test_read_allocation_sql.py``; over HTTP:
``test_api_allocation.py``."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from starlette.datastructures import QueryParams

from kubecost_worker.read import allocation
from kubecost_worker.read.allocation import BadParameter, Clause, Dimension, MissingParameter
from kubecost_worker.read.sharing import SharePolicy


def test_aggregate_parsing():
    assert allocation.parse_aggregate("namespace, label:team") == (Dimension("namespace"),
                                                                    Dimension("label:team", "team"))
    assert [d.name for d in allocation.parse_aggregate("workload,pod")] == [
        "namespace", "controllerKind", "controller", "pod"]
    for bad in ("", "everything", "label:bad-key", "namespace,,pod", "label:"):
        with pytest.raises(BadParameter) as raised:
            allocation.parse_aggregate(bad)
        assert raised.value.name == "aggregate"


def test_filter_parsing():
    assert allocation.parse_filter('namespace:"a","b"+label[team]!:"x" controllerName~:"api-"') == (
        Clause("namespace", None, ":", ("a", "b")), Clause("label", "team", "!:", ("x",)),
        Clause("controllerName", None, "~:", ("api-",)))
    assert allocation.parse_filter('pod:"with \\"quote\\" and + plus"') == (
        Clause("pod", None, ":", ('with "quote" and + plus',)),)
    assert allocation.parse_filter("") == ()
    for bad in ('namespace:a', 'nowhere:"x"', 'label:"x"', 'label[bad-key]:"x"', 'namespace:"a" junk',
                'namespace:"a",', 'namespace="a"', 'namespace[x]:"a"'):
        with pytest.raises(BadParameter) as raised:
            allocation.parse_filter(bad)
        assert raised.value.name == "filter", bad


def test_share_parameters():
    request = allocation.parse_request({"aggregate": "namespace", "shareIdle": "true", "idleByNode": "false",
                                        "shareNamespaces": "kube-system, monitoring", "shareLabels": "team:platform",
                                        "shareSplit": "even", "namespace": "data"})
    assert request.policy == SharePolicy(share_idle=True, split="even")
    assert request.share_namespaces == ("kube-system", "monitoring") and request.share_labels == (("team", "platform"),)
    assert request.filters == (Clause("namespace", None, ":", ("data",)),)
    for name, value in (("shareIdle", "maybe"), ("shareSplit", "random"), ("shareLabels", "noColon"),
                        ("step", "year"), ("shareTenancyCosts", "2")):
        with pytest.raises(BadParameter) as raised:
            allocation.parse_request({"aggregate": "namespace", name: value})
        assert raised.value.name == name
    for name, value in (("targetCPUUtilization", "0"), ("targetRAMUtilization", "1.5"), ("q", "nan"),
                        ("algorithm", "mean"), ("q", "x")):
        with pytest.raises(BadParameter) as raised:
            allocation.parse_rightsizing({name: value})
        assert raised.value.name == name


def received(query: str) -> QueryParams:
    """The parameters of a query string as the API receives them: decoded by Starlette (a ``+`` sent as is reads
    as a blank, ``%2B`` as a ``+``)."""
    return QueryParams(query)


def filter_sent(text: str) -> tuple[tuple[Clause, ...], tuple[Clause, ...]]:
    """The filter parsed from a query string holding ``text`` with its ``+`` sent as is, and encoded (%2B)."""
    as_is = text.replace('"', "%22").replace(" ", "%20")
    encoded = quote(text, safe=":,~!")
    return (allocation.parse_filter(received(f"filter={as_is}")["filter"]),
            allocation.parse_filter(received(f"filter={encoded}")["filter"]))


def test_a_plus_joins_clauses_the_same_sent_as_is_or_encoded():
    shop = (Clause("namespace", None, ":", ("shop",)),)
    for text, clauses in (('namespace:"shop"++namespace:"shop"', shop * 2), ('+namespace:"shop"', shop),
                          ('namespace:"shop"+', shop), ('+ namespace:"shop" + +', shop),
                          ('namespace:"shop"+pod~:"web"', shop + (Clause("pod", None, "~:", ("web",)),)),
                          ("+", ()), ("++ +", ())):
        assert filter_sent(text) == (clauses, clauses), text
    assert allocation.parse_filter('namespace:"shop" pod~:"web"') == filter_sent('namespace:"shop"+pod~:"web"')[0]
    for text in ('namespace:"shop"pod:"web"', 'namespace:"shop"+,', 'namespace:"shop"+"web"'):
        for sent in (text.replace('"', "%22"), quote(text, safe=":,~!")):
            with pytest.raises(BadParameter) as raised:
                allocation.parse_filter(received(f"filter={sent}")["filter"])
            assert raised.value.name == "filter", sent


def test_blanks_around_every_value_are_stripped_and_a_blank_value_is_as_if_absent():
    plain = allocation.parse_request(received(
        "aggregate=namespace&step=day&filter=pod:%22a%22&namespace=data&shareSplit=even&shareIdle=true"
        "&idleByNode=yes&shareTenancyCosts=1&shareNamespaces=kube-system&shareLabels=team:platform"))
    values = (("aggregate", "namespace"), ("step", "day"), ("filter", "pod:%22a%22"), ("namespace", "data"),
              ("shareSplit", "even"), ("shareIdle", "true"), ("idleByNode", "yes"), ("shareTenancyCosts", "1"),
              ("shareNamespaces", "kube-system"), ("shareLabels", "team:platform"))
    for blank in ("%20", "+", "%09", "%20+%20"):
        padded = "&".join(f"{name}={blank}{value}{blank}" for name, value in values)
        assert allocation.parse_request(received(padded)) == plain, padded
    default = allocation.parse_request(received("aggregate=namespace"))
    assert default.step == "window" and default.policy == SharePolicy() and default.filters == ()
    for blank in ("", "%20", "+", "%20%09+"):
        assert allocation.parse_request(received(
            f"aggregate=namespace&step={blank}&filter={blank}&namespace={blank}&shareSplit={blank}&shareIdle={blank}"
            f"&idleByNode={blank}&shareTenancyCosts={blank}&shareNamespaces={blank}&shareLabels={blank}")) == default
        with pytest.raises(MissingParameter) as raised:
            allocation.parse_request(received(f"aggregate={blank}"))
        assert raised.value.name == "aggregate" and isinstance(raised.value, BadParameter)
        assert allocation.parse_rightsizing(received(
            f"targetCPUUtilization={blank}&targetRAMUtilization={blank}&algorithm={blank}&q={blank}")) \
            == allocation.RightsizingRequest()
    assert allocation.parse_rightsizing(received("targetCPUUtilization=+0.5&algorithm=%20quantile+&q=0.9%20")) \
        == allocation.RightsizingRequest(target_cpu=0.5, algorithm="quantile", q=0.9)
    assert allocation.parse_step(" month ") == "month" and allocation.parse_step(None) == "window"
    with pytest.raises(BadParameter) as raised:
        allocation.parse_step("year")
    assert raised.value.name == "step"


def test_each_request_reads_the_smallest_table_that_holds_it():
    def table(**params) -> str:
        return allocation.source_table(allocation.parse_request({"aggregate": "namespace", **params}))

    assert table() == table(aggregate="cluster,namespace", filter='namespace:"a"', shareIdle="true") \
        == "k8s_expenses_namespace_hourly"
    assert table(aggregate="controller,label:team", filter='namespace:"data"') == table(shareLabels="team:x") \
        == table(aggregate="service,container", filter='label[team]:"a"+controllerName~:"x"') \
        == "k8s_expenses_workload_hourly"
    assert table(aggregate="pod") == table(filter='node:"n1"') == table(shareIdle="true", idleByNode="true") \
        == "k8s_expenses"
