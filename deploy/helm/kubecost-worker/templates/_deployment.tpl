{{/*
One Deployment of deployment mode: (dict "ctx" $ "component" NAME "args" LIST "values" COMPONENT-VALUES
  "replicas" INT-or-nil "recreate" BOOL "port" {"name", "number"} "broker" BOOL "cluster" BOOL).
*/}}
{{- define "kubecost-worker.deployment" -}}
{{- $root := .ctx }}
{{- $v := .values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kubecost-worker.componentName" (list $root .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kubecost-worker.componentLabels" (list $root .component) | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .replicas) }}
  replicas: {{ .replicas | int }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- if .recreate }}
  # Never two schedulers, not even during a rollout.
  strategy:
    type: Recreate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  {{- end }}
  selector:
    matchLabels:
      {{- include "kubecost-worker.componentSelectorLabels" (list $root .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "kubecost-worker.componentSelectorLabels" (list $root .component) | nindent 8 }}
        {{- include "kubecost-worker.metricsLabel" $root | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "kubecost-worker.podAnnotations" $root | nindent 8 }}
    spec:
      {{- include "kubecost-worker.podSpecCommon" $root | trim | nindent 6 }}
      {{- with $root.Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- tpl (toYaml .) $root | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ add (int $root.Values.config.shutdownGraceSeconds) 15 }}
      containers:
        - name: {{ .component }}
          image: {{ include "kubecost-worker.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: {{ toJson .args }}
          ports:
            - name: {{ .port.name }}
              containerPort: {{ .port.number | int }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "kubecost-worker.fullname" $root }}
          env:
            {{- include "kubecost-worker.secretEnv" (dict "ctx" $root "secret" (include "kubecost-worker.secretName" $root) "broker" .broker "cluster" .cluster) | trim | nindent 12 }}
          {{- with $v.livenessProbe }}
          livenessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.readinessProbe }}
          readinessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          volumeMounts:
            {{- include "kubecost-worker.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "kubecost-worker.volumes" $root | nindent 8 }}
{{- end }}
