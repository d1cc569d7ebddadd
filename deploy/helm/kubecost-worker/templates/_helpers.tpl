{{/* Names ------------------------------------------------------------------------------------------------ */}}

{{- define "kubecost-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; 63 characters at most (DNS label). */}}
{{- define "kubecost-worker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<suffix>", with the fullname shortened so the whole stays a DNS label. */}}
{{- define "kubecost-worker.componentName" -}}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "kubecost-worker.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "kubecost-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels ----------------------------------------------------------------------------------------------- */}}

{{- define "kubecost-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubecost-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubecost-worker.labels" -}}
helm.sh/chart: {{ include "kubecost-worker.chart" . }}
{{ include "kubecost-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubecost-worker
{{- end }}

{{/* Labels of one component: (list $ "consumer"). */}}
{{- define "kubecost-worker.componentLabels" -}}
{{ include "kubecost-worker.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "kubecost-worker.componentSelectorLabels" -}}
{{ include "kubecost-worker.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Pods that serve /metrics (scheduler, consumers, API): the metrics Service selects them by this label. */}}
{{- define "kubecost-worker.metricsLabel" -}}
kubecost-worker/metrics: "true"
{{- end }}

{{/* Image and names of the config objects ------------------------------------------------------------------ */}}

{{- define "kubecost-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{- define "kubecost-worker.secretName" -}}
{{- .Values.existingSecret | default (include "kubecost-worker.fullname" .) }}
{{- end }}

{{/* The Secret the migration hook reads: the existing one, else a hook copy (hooks run before the release's Secret exists). */}}
{{- define "kubecost-worker.migrateSecretName" -}}
{{- .Values.existingSecret | default (include "kubecost-worker.componentName" (list . "migrate")) }}
{{- end }}

{{- define "kubecost-worker.isDeployment" -}}
{{- if eq .Values.mode "deployment" }}true{{ end }}
{{- end }}

{{/* In cronjob mode with a PVC the database may be the embedded chDB under /data: the ClickHouse URL is optional. */}}
{{- define "kubecost-worker.clickhouseOptional" -}}
{{- if and (eq .Values.mode "cronjob") .Values.persistence.enabled }}true{{ else }}false{{ end }}
{{- end }}

{{/* Configuration ---------------------------------------------------------------------------------------- */}}

{{/* Every non-secret KCW_* setting (ConfigMap data; strings). */}}
{{- define "kubecost-worker.configData" -}}
{{- $c := .Values.config -}}
KCW_THANOS_URL: {{ $c.thanosUrl | quote }}
KCW_THANOS_TIMEOUT_SECONDS: {{ $c.thanosTimeoutSeconds | toString | quote }}
{{- $headers := list }}
{{- range $k, $v := $c.thanosHeaders }}
{{- $headers = append $headers (printf "%s=%s" $k $v) }}
{{- end }}
KCW_THANOS_HEADERS: {{ join "," $headers | quote }}
{{- if not (kindIs "invalid" $c.thanosDedup) }}
KCW_THANOS_DEDUP: {{ $c.thanosDedup | toString | quote }}
{{- end }}
KCW_THANOS_RAW_ONLY: {{ $c.thanosRawOnly | toString | quote }}
KCW_THANOS_PARTIAL_RESPONSE: {{ $c.thanosPartialResponse | toString | quote }}
KCW_THANOS_RETRIES: {{ $c.thanosRetries | int | toString | quote }}
KCW_THANOS_PARALLEL_QUERIES: {{ $c.thanosParallelQueries | int | toString | quote }}
KCW_THANOS_COMPRESSED: {{ $c.thanosCompressed | toString | quote }}
KCW_BATCH_HOURS: {{ $c.batchHours | int | toString | quote }}
KCW_BATCH_SERIES_HOURS: {{ $c.batchSeriesHours | int | toString | quote }}
{{- if .Values.thanosAuth.tokenSecret }}
KCW_THANOS_TOKEN_FILE: "/var/run/secrets/kubecost-worker/thanos-token/{{ .Values.thanosAuth.tokenSecretKey }}"
{{- end }}
{{- if .Values.thanosAuth.caSecret }}
KCW_THANOS_CA_FILE: "/var/run/secrets/kubecost-worker/thanos-ca/{{ .Values.thanosAuth.caSecretKey }}"
{{- end }}
KCW_TENANT_LABEL: {{ $c.tenantLabel | quote }}
KCW_TENANTS: {{ join "," $c.tenants | quote }}
KCW_DATA_DIR: "/data"
KCW_CLICKHOUSE_CLUSTER: {{ $c.clickhouseCluster | quote }}
KCW_RETENTION_DAYS: {{ $c.retentionDays | int | toString | quote }}
KCW_DAILY_RETENTION_DAYS: {{ $c.dailyRetentionDays | int | toString | quote }}
KCW_REFUSE_BELOW: {{ $c.refuseBelow | toString | quote }}
{{- range $env, $key := dict "KCW_DEFAULT_CPU_PRICE" "defaultCpuPrice" "KCW_DEFAULT_RAM_PRICE" "defaultRamPrice" "KCW_DEFAULT_GPU_PRICE" "defaultGpuPrice" }}
{{- $price := index $c $key }}
{{ $env }}: {{ if kindIs "invalid" $price }}""{{ else }}{{ $price | toString | quote }}{{ end }}
{{- end }}
KCW_STEP_SECONDS: {{ $c.stepSeconds | int | toString | quote }}
KCW_LOG_FORMAT: {{ $c.logFormat | quote }}
KCW_LOG_LEVEL: {{ $c.logLevel | quote }}
KCW_QUEUE_PREFIX: {{ $c.queuePrefix | quote }}
KCW_PREFETCH: {{ $c.prefetch | int | toString | quote }}
KCW_BROKER_HEARTBEAT_SECONDS: {{ $c.brokerHeartbeatSeconds | int | toString | quote }}
KCW_MAX_RETRIES: {{ $c.maxRetries | int | toString | quote }}
{{- $delays := list }}
{{- range $c.retryDelaysSeconds }}
{{- $delays = append $delays (int .) }}
{{- end }}
KCW_RETRY_DELAYS_SECONDS: {{ join "," $delays | quote }}
KCW_MAX_RERUN_HOURS: {{ $c.maxRerunHours | int | toString | quote }}
KCW_SCHEDULE_MINUTE: {{ $c.scheduleMinute | int | toString | quote }}
KCW_LAG_MINUTES: {{ $c.lagMinutes | int | toString | quote }}
KCW_MAX_CATCHUP_HOURS: {{ $c.maxCatchupHours | int | toString | quote }}
KCW_RECHECK_HOURS: {{ $c.recheckHours | int | toString | quote }}
KCW_SHUTDOWN_GRACE_SECONDS: {{ $c.shutdownGraceSeconds | toString | quote }}
KCW_API_HOST: "0.0.0.0"
KCW_API_PORT: {{ $c.apiPort | int | toString | quote }}
KCW_METRICS_PORT: {{ $c.metricsPort | int | toString | quote }}
KCW_OPTSCALE_TABLE: {{ $c.optscaleTable | quote }}
KCW_BILL_TABLE: {{ $c.billTable | quote }}
KCW_BILL_COST: {{ $c.billCost | quote }}
KCW_BILL_LAG_HOURS: {{ $c.billLagHours | int | toString | quote }}
{{- end }}

{{/* Data of the chart-created Secret: only the keys that have a value (a missing key fails the pod loudly). */}}
{{- define "kubecost-worker.secretData" -}}
{{- $s := .Values.secrets }}
{{- $k := .Values.secretKeys }}
{{- if $s.clickhouseUrl }}
{{ $k.clickhouseUrl }}: {{ $s.clickhouseUrl | b64enc | quote }}
{{- end }}
{{- if and $s.brokerUrl (eq .Values.mode "deployment") }}
{{ $k.brokerUrl }}: {{ $s.brokerUrl | b64enc | quote }}
{{- end }}
{{- if and $s.clusterSecret (eq .Values.mode "deployment") }}
{{ $k.clusterSecret }}: {{ $s.clusterSecret | b64enc | quote }}
{{- end }}
{{- if $s.optscaleClickhouseUrl }}
{{ $k.optscaleClickhouseUrl }}: {{ $s.optscaleClickhouseUrl | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Secret environment of a container, then extraEnv: (dict "ctx" $ "secret" NAME "broker" BOOL "cluster" BOOL
   "optscale" BOOL). */}}
{{- define "kubecost-worker.secretEnv" -}}
{{- $root := .ctx }}
- name: KCW_CLICKHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secretKeys.clickhouseUrl }}
      optional: {{ include "kubecost-worker.clickhouseOptional" $root }}
{{- if .broker }}
- name: KCW_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secretKeys.brokerUrl }}
{{- end }}
{{- if .cluster }}
- name: KCW_CLUSTER_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secretKeys.clusterSecret }}
{{- end }}
{{- if .optscale }}
# optional: without the key, the OptScale table is in the worker's own ClickHouse
- name: KCW_OPTSCALE_CLICKHOUSE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $root.Values.secretKeys.optscaleClickhouseUrl }}
      optional: true
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pods --------------------------------------------------------------------------------------------------- */}}

{{/* Annotations that roll the pods when the configuration changes. */}}
{{- define "kubecost-worker.podAnnotations" -}}
checksum/config: {{ include "kubecost-worker.configData" . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include "kubecost-worker.secretData" . | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every workload. */}}
{{- define "kubecost-worker.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Volumes: a writable /tmp and /data under a read-only root (/data: the PVC in cronjob mode with persistence),
plus the Thanos files. */}}
{{- define "kubecost-worker.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if and (eq .Values.mode "cronjob") .Values.persistence.enabled }}
- name: data
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (include "kubecost-worker.componentName" (list . "data")) }}
{{- else }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataSizeLimit }}
{{- end }}
{{- with .Values.thanosAuth.tokenSecret }}
- name: thanos-token
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- with .Values.thanosAuth.caSecret }}
- name: thanos-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- end }}

{{- define "kubecost-worker.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- if .Values.thanosAuth.tokenSecret }}
- name: thanos-token
  mountPath: /var/run/secrets/kubecost-worker/thanos-token
  readOnly: true
{{- end }}
{{- if .Values.thanosAuth.caSecret }}
- name: thanos-ca
  mountPath: /var/run/secrets/kubecost-worker/thanos-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* Checks of values that the schema cannot express; rendered (empty) by the ConfigMap. */}}
{{- define "kubecost-worker.validate" -}}
{{- $c := .Values.config }}
{{- if mod 3600 (int $c.stepSeconds) }}
{{- fail (printf "config.stepSeconds must divide an hour (3600 s) evenly, got %v" $c.stepSeconds) }}
{{- end }}
{{- if and .Values.consumer.autoscaling.enabled (gt (int .Values.consumer.autoscaling.minReplicas) (int .Values.consumer.autoscaling.maxReplicas)) }}
{{- fail "consumer.autoscaling.minReplicas must not exceed consumer.autoscaling.maxReplicas" }}
{{- end }}
{{- if eq .Values.mode "deployment" }}
{{- if .Values.persistence.enabled }}
{{- fail "persistence is for mode: cronjob (the embedded chDB); mode: deployment needs a ClickHouse server (secrets.clickhouseUrl or existingSecret)" }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- if hasPrefix "chdb:" .Values.secrets.clickhouseUrl }}
{{- fail "mode: deployment runs several processes that share the database, and chDB opens a path in one process only: set secrets.clickhouseUrl to a ClickHouse server, http(s)://user:password@host:8123/database" }}
{{- end }}
{{- if hasPrefix "memory:" .Values.secrets.brokerUrl }}
{{- fail "mode: deployment needs a broker shared between processes: set secrets.brokerUrl to amqp://user:password@host:5672/vhost (RabbitMQ)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
