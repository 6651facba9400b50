{{/*
Names and labels. The monitoring templates use gouache.fullname, gouache.name,
gouache.labels, gouache.selectorLabels (dict "ctx" . "component" NAME) and
gouache.componentName (dict "ctx" . "component" NAME).
*/}}

{{- define "gouache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gouache.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gouache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of a component's objects: <fullname>-<component>. */}}
{{- define "gouache.componentName" -}}
{{- printf "%s-%s" (include "gouache.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "gouache.labels" -}}
helm.sh/chart: {{ include "gouache.chart" . }}
app.kubernetes.io/name: {{ include "gouache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gouache
{{- end -}}

{{/* Selector labels of one component: dict "ctx" . "component" NAME. */}}
{{- define "gouache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gouache.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects: dict "ctx" . "component" NAME. */}}
{{- define "gouache.componentLabels" -}}
{{ include "gouache.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gouache.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gouache.inferenceImage" -}}
{{- printf "%s:%s" .Values.inferenceImage.repository (default .Chart.AppVersion .Values.inferenceImage.tag) -}}
{{- end -}}

{{/* The gRPC port of each service. */}}
{{- define "gouache.grpcPort" -}}
{{- get (dict "auth" 50051 "storage" 50052 "jobs" 50053 "tiling" 50054 "inference" 50055 "feedback" 50056) . -}}
{{- end -}}

{{/* host:port of a service's gRPC endpoint inside the namespace: dict "ctx" . "component" NAME. */}}
{{- define "gouache.grpcAddr" -}}
{{- printf "%s:%s" (include "gouache.componentName" .) (include "gouache.grpcPort" .component) -}}
{{- end -}}

{{- define "gouache.natsUrl" -}}
{{- $name := include "gouache.componentName" (dict "ctx" . "component" "nats") -}}
{{- printf "nats://%s:4222" $name -}}
{{- end -}}

{{/* Stream replicas: three in a cluster of three or more, else the cluster's size. */}}
{{- define "gouache.streamReplicas" -}}
{{- min 3 (int .Values.nats.replicas) -}}
{{- end -}}

{{/* The URL clients reach the edge at. */}}
{{- define "gouache.publicUrl" -}}
{{- if .Values.edge.publicUrl -}}
{{- .Values.edge.publicUrl | trimSuffix "/" -}}
{{- else -}}
{{- $scheme := ternary "https" "http" .Values.edge.tls.enabled -}}
{{- printf "%s://%s.%s.svc:%d" $scheme (include "gouache.componentName" (dict "ctx" . "component" "edge")) .Release.Namespace (int (include "gouache.edgeServicePort" .)) -}}
{{- end -}}
{{- end -}}

{{- define "gouache.edgeServicePort" -}}
{{- if .Values.edge.service.port -}}
{{- .Values.edge.service.port -}}
{{- else -}}
{{- ternary 443 80 .Values.edge.tls.enabled -}}
{{- end -}}
{{- end -}}

{{- define "gouache.edgeTlsSecret" -}}
{{- if .Values.edge.tls.secretName -}}
{{- .Values.edge.tls.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "gouache.componentName" (dict "ctx" . "component" "edge")) -}}
{{- end -}}
{{- end -}}

{{/* Secret names and keys. */}}
{{- define "gouache.passphraseSecret" -}}
{{- default (printf "%s-auth-signing" (include "gouache.fullname" .)) .Values.secrets.signingKeyPassphrase.existingSecret -}}
{{- end -}}
{{- define "gouache.urlSigningSecret" -}}
{{- default (printf "%s-url-signing" (include "gouache.fullname" .)) .Values.secrets.urlSigningKey.existingSecret -}}
{{- end -}}
{{- define "gouache.jobsSecretsSecret" -}}
{{- default (printf "%s-jobs-secrets" (include "gouache.fullname" .)) .Values.secrets.jobsSecretsKey.existingSecret -}}
{{- end -}}
{{- define "gouache.serviceKeysSecret" -}}
{{- default (printf "%s-service-keys" (include "gouache.fullname" .)) .Values.secrets.serviceKeys.existingSecret -}}
{{- end -}}
{{- define "gouache.adminSecret" -}}
{{- printf "%s-admin" (include "gouache.fullname" .) -}}
{{- end -}}
{{- define "gouache.databaseSecret" -}}
{{- if .Values.postgresql.bundled -}}
{{- printf "%s-postgresql" (include "gouache.fullname" .) -}}
{{- else -}}
{{- .Values.postgresql.external.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "gouache.databaseUserKey" -}}
{{- ternary "username" .Values.postgresql.external.userKey .Values.postgresql.bundled -}}
{{- end -}}
{{- define "gouache.databasePasswordKey" -}}
{{- ternary "password" .Values.postgresql.external.passwordKey .Values.postgresql.bundled -}}
{{- end -}}
{{- define "gouache.s3Secret" -}}
{{- if .Values.minio.bundled -}}
{{- printf "%s-minio" (include "gouache.fullname" .) -}}
{{- else -}}
{{- .Values.objectStore.s3.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "gouache.s3AccessKeyKey" -}}
{{- ternary "accessKey" .Values.objectStore.s3.accessKeyKey .Values.minio.bundled -}}
{{- end -}}
{{- define "gouache.s3SecretKeyKey" -}}
{{- ternary "secretKey" .Values.objectStore.s3.secretKeyKey .Values.minio.bundled -}}
{{- end -}}

{{/*
A database URL without credentials: asyncpg reads PGUSER, PGPASSWORD and PGSSLMODE from
the environment, so the password never appears in a URL, a ConfigMap or a process list.
*/}}
{{- define "gouache.databaseUrl" -}}
{{- if .Values.postgresql.bundled -}}
{{- printf "postgresql+asyncpg://%s:5432/gouache" (include "gouache.componentName" (dict "ctx" . "component" "postgresql")) -}}
{{- else -}}
{{- printf "postgresql+asyncpg://%s:%d/%s" .Values.postgresql.external.host (int .Values.postgresql.external.port) .Values.postgresql.external.database -}}
{{- end -}}
{{- end -}}

{{- define "gouache.sslmode" -}}
{{- ternary "disable" .Values.postgresql.external.sslmode .Values.postgresql.bundled -}}
{{- end -}}

{{/* Fails the render with one clear line when the production profile lacks a setting. */}}
{{- define "gouache.validate" -}}
{{- if not .Values.postgresql.bundled -}}
{{- if not .Values.postgresql.external.host -}}
{{- fail "postgresql.external.host is required (or set postgresql.bundled=true for development: -f values-dev.yaml)" -}}
{{- end -}}
{{- if not .Values.postgresql.external.existingSecret -}}
{{- fail "postgresql.external.existingSecret is required: a Secret with the database user and password (keys postgresql.external.userKey, postgresql.external.passwordKey)" -}}
{{- end -}}
{{- end -}}
{{- if not .Values.minio.bundled -}}
{{- if not .Values.objectStore.s3.endpoint -}}
{{- fail "objectStore.s3.endpoint is required (host:port of an S3-compatible store), or set minio.bundled=true for development" -}}
{{- end -}}
{{- if not .Values.objectStore.s3.existingSecret -}}
{{- fail "objectStore.s3.existingSecret is required: a Secret with the S3 access and secret keys (keys objectStore.s3.accessKeyKey, objectStore.s3.secretKeyKey)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.edge.tls.enabled (not .Values.edge.tls.secretName) (not .Values.edge.tls.certManager.enabled) -}}
{{- fail "edge.tls.enabled needs edge.tls.secretName (a kubernetes.io/tls Secret) or edge.tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.edge.tls.certManager.enabled (or (not .Values.edge.tls.certManager.issuerRef.name) (not .Values.edge.tls.certManager.dnsNames)) -}}
{{- fail "edge.tls.certManager.enabled needs edge.tls.certManager.issuerRef.name and edge.tls.certManager.dnsNames" -}}
{{- end -}}
{{- if and .Values.mtls.enabled (not .Values.mtls.secretName) -}}
{{- fail "mtls.enabled needs mtls.secretName: a Secret with tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- if and (not .Values.bootstrap.enabled) (not .Values.secrets.serviceKeys.existingSecret) -}}
{{- fail "bootstrap.enabled=false needs secrets.serviceKeys.existingSecret (the API keys of storage, inference, tiling, jobs, feedback and operator)" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings every gouache pod shares. */}}
{{- define "gouache.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "gouache.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/*
Spread a component's pods over nodes and zones (best effort): dict "ctx" . "component" NAME.
*/}}
{{- define "gouache.topologySpread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "gouache.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "gouache.selectorLabels" . | nindent 8 }}
{{- end -}}

{{/* The mTLS volume and mount. */}}
{{- define "gouache.mtlsVolume" -}}
{{- if .Values.mtls.enabled }}
- name: mtls
  secret:
    secretName: {{ .Values.mtls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "gouache.mtlsMount" -}}
{{- if .Values.mtls.enabled }}
- name: mtls
  mountPath: /etc/gouache/mtls
  readOnly: true
{{- end }}
{{- end -}}
