{{/* NetworkPolicy fragments. */}}

{{/* Egress to one component's pods: dict "ctx" . "component" NAME "ports" (list N...). */}}
{{- define "gouache.egressTo" -}}
- to:
    - {{- include "gouache.peer" (dict "ctx" .ctx "component" .component) | nindent 6 }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}

{{/* Ingress from components: dict "ctx" . "from" (list NAME...) "ports" (list N...). */}}
{{- define "gouache.ingressFrom" -}}
{{- $ctx := .ctx -}}
- from:
    {{- range .from }}
    - {{- include "gouache.peer" (dict "ctx" $ctx "component" .) | nindent 6 }}
    {{- end }}
  ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}

{{- define "gouache.natsEgress" -}}
{{- include "gouache.egressTo" (dict "ctx" . "component" "nats" "ports" (list 4222)) -}}
{{- end -}}

{{- define "gouache.databaseEgress" -}}
{{- if .Values.postgresql.bundled -}}
{{- include "gouache.egressTo" (dict "ctx" . "component" "postgresql" "ports" (list 5432)) -}}
{{- else -}}
- to:
    {{- range .Values.networkPolicy.databaseCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: {{ .Values.postgresql.external.port }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{- define "gouache.objectStoreEgress" -}}
{{- if .Values.minio.bundled -}}
{{- include "gouache.egressTo" (dict "ctx" . "component" "minio" "ports" (list 9000)) -}}
{{- else -}}
{{- $parts := splitList ":" .Values.objectStore.s3.endpoint -}}
{{- $port := ternary (last $parts) (ternary "443" "80" .Values.objectStore.s3.secure) (gt (len $parts) 1) -}}
- to:
    {{- range .Values.networkPolicy.objectStoreCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: {{ $port }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{- define "gouache.apiServerEgress" -}}
- to:
    {{- range .Values.networkPolicy.apiServerCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: 443, protocol: TCP}
    - {port: 6443, protocol: TCP}
{{- end -}}

{{/* The inference pods the operator creates for ModelVersions. */}}
{{- define "gouache.versionInferencePeer" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/managed-by: gouache-operator
    app.kubernetes.io/name: gouache-inference
{{- end -}}

{{/* To the trace collector, when tracing is on: the port of tracing.otlpEndpoint (4317 by default). */}}
{{- define "gouache.tracingEgress" -}}
{{- with .Values.tracing.otlpEndpoint -}}
{{- $url := urlParse . -}}
{{- $parts := splitList ":" $url.host -}}
{{- $port := ternary (last $parts) "4317" (gt (len $parts) 1) -}}
- to:
    {{- range $.Values.tracing.collectorCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: {{ $port }}, protocol: TCP}
{{- end -}}
{{- end -}}
