{{/*
One gRPC service of the mesh: its ConfigMap (settings), ServiceAccount, Deployment,
headless Service, PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy.

dict
  ctx        the root context
  component  auth | storage | jobs | tiling | inference | feedback
  env        dict of settings (FIELD: value) written as GOUACHE_<COMPONENT>_FIELD
  secretEnv  list of {name, secret, key}: settings read from Secrets
  database   true: PGUSER/PGPASSWORD/PGSSLMODE from the database Secret
  image      the image reference
  pullPolicy the image pull policy
  ports      extra container ports: list of {name, port} (also on the Service)
  ingress    list of NetworkPolicy ingress rules (besides metrics scraping)
  egress     list of NetworkPolicy egress rules (besides DNS)
*/}}
{{- define "gouache.meshService" -}}
{{- $ctx := .ctx -}}
{{- $component := .component -}}
{{- $values := index $ctx.Values $component -}}
{{- $name := include "gouache.componentName" (dict "ctx" $ctx "component" $component) -}}
{{- $prefix := printf "GOUACHE_%s_" (upper $component) -}}
{{- $grpcPort := int (include "gouache.grpcPort" $component) -}}
{{- $metricsPort := int $ctx.Values.config.metricsPort -}}
{{- $selector := dict "ctx" $ctx "component" $component -}}
{{- $common := dict
    "HOST" "0.0.0.0"
    "PORT" (toString $grpcPort)
    "METRICS_PORT" (toString $metricsPort)
    "LOG_LEVEL" $ctx.Values.config.logLevel
    "LOG_JSON" "true"
    "AUTH_ADDR" (include "gouache.grpcAddr" (dict "ctx" $ctx "component" "auth"))
    "CALL_TIMEOUT_S" (toString $ctx.Values.config.callTimeoutSeconds)
    "GRACE_S" (toString $ctx.Values.config.graceSeconds)
    "STATE_DIR" "/tmp/state"
-}}
{{- if $ctx.Values.mtls.enabled -}}
{{- $_ := set $common "TLS_CERT_FILE" "/etc/gouache/mtls/tls.crt" -}}
{{- $_ := set $common "TLS_KEY_FILE" "/etc/gouache/mtls/tls.key" -}}
{{- $_ := set $common "TLS_CA_FILE" "/etc/gouache/mtls/ca.crt" -}}
{{- end -}}
{{- $settings := merge (dict) .env $common -}}
{{- $config := dict -}}
{{- range $key, $value := $settings -}}
{{- $_ := set $config (printf "%s%s" $prefix $key) (toString $value) -}}
{{- end -}}
{{- with $ctx.Values.tracing.otlpEndpoint -}}
{{- $_ := set $config "OTEL_TRACES_EXPORTER" "otlp" -}}
{{- $_ := set $config "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- $_ := set $config "OTEL_TRACES_SAMPLER" $ctx.Values.tracing.sampler -}}
{{- $_ := set $config "OTEL_TRACES_SAMPLER_ARG" $ctx.Values.tracing.samplerArg -}}
{{- $_ := set $config "OTEL_SERVICE_NAME" (printf "gouache-%s" $component) -}}
{{- $_ := set $config "OTEL_RESOURCE_ATTRIBUTES" (printf "k8s.namespace.name=%s,service.namespace=%s" $ctx.Release.Namespace $ctx.Release.Name) -}}
{{- end -}}
{{- range $key, $value := $values.extraEnv -}}
{{- $_ := set $config $key (toString $value) -}}
{{- end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
data:
  {{- toYaml $config | nindent 2 }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "gouache.selectorLabels" $selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels:
        {{- include "gouache.componentLabels" $selector | nindent 8 }}
        {{- include "gouache.meshLabel" $ctx | nindent 8 }}
      annotations:
        checksum/config: {{ toYaml $config | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ add (int $ctx.Values.config.graceSeconds) 10 }}
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "gouache.podSecurityContext" $ctx | nindent 8 }}
      {{- include "gouache.topologySpread" $selector | nindent 6 }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $component }}
          image: {{ .image }}
          imagePullPolicy: {{ .pullPolicy }}
          command: ["python", "-m", "services.{{ $component }}"]
          envFrom:
            - configMapRef:
                name: {{ $name }}
          {{- if or .secretEnv .database }}
          env:
            {{- if .database }}
            - name: PGUSER
              valueFrom:
                secretKeyRef:
                  name: {{ include "gouache.databaseSecret" $ctx }}
                  key: {{ include "gouache.databaseUserKey" $ctx }}
            - name: PGPASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ include "gouache.databaseSecret" $ctx }}
                  key: {{ include "gouache.databasePasswordKey" $ctx }}
            - name: PGSSLMODE
              value: {{ include "gouache.sslmode" $ctx | quote }}
            {{- end }}
            {{- range .secretEnv }}
            - name: {{ printf "%s%s" $prefix .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secret }}
                  key: {{ .key }}
            {{- end }}
          {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $metricsPort }}
              protocol: TCP
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
          {{- $probe := include "gouache.probe" (dict "ctx" $ctx "grpcPort" $grpcPort) }}
          startupProbe:
            {{- $probe | nindent 12 }}
            periodSeconds: 5
            failureThreshold: {{ ternary 120 36 (eq $component "inference") }}
          readinessProbe:
            {{- $probe | nindent 12 }}
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            {{- $probe | nindent 12 }}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 6
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- include "gouache.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- include "gouache.mtlsMount" $ctx | nindent 12 }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ ternary "2Gi" "256Mi" (eq $component "inference") }}
        {{- include "gouache.mtlsVolume" $ctx | nindent 8 }}
---
# Headless: clients and Envoy (STRICT_DNS) resolve every ready pod and spread over them.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "gouache.selectorLabels" $selector | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $grpcPort }}
      targetPort: grpc
      appProtocol: grpc
    - name: metrics
      port: {{ $metricsPort }}
      targetPort: metrics
    {{- range .ports }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
    {{- end }}
{{- if $values.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
spec:
  maxUnavailable: {{ $values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "gouache.selectorLabels" $selector | nindent 6 }}
{{- end }}
{{- if $values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $ctx.Values.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "gouache.componentLabels" $selector | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "gouache.selectorLabels" $selector | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- with .ingress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- include "gouache.metricsIngress" (dict "ctx" $ctx "port" $metricsPort) | nindent 4 }}
  egress:
    {{- include "gouache.dnsEgress" $ctx | nindent 4 }}
    {{- with .egress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- include "gouache.tracingEgress" $ctx | nindent 4 }}
{{- end }}
{{- end -}}

{{/* The health probe: native gRPC, or /healthz on the metrics port under mTLS. */}}
{{- define "gouache.probe" -}}
{{- if .ctx.Values.mtls.enabled -}}
httpGet:
  path: /healthz
  port: metrics
{{- else -}}
grpc:
  port: {{ .grpcPort }}
{{- end -}}
{{- end -}}

{{/* Marks the pods of this release's mesh (NetworkPolicy peers select on it). */}}
{{- define "gouache.meshLabel" -}}
gouache.dev/mesh: {{ .Release.Name }}
{{- end -}}

{{/* A NetworkPolicy peer: the pods of one component of this release. */}}
{{- define "gouache.peer" -}}
podSelector:
  matchLabels:
    {{- include "gouache.selectorLabels" . | nindent 4 }}
{{- end -}}

{{- define "gouache.metricsIngress" -}}
- from:
    - namespaceSelector:
        {{- toYaml .ctx.Values.networkPolicy.monitoringNamespaceSelector | nindent 8 }}
  ports:
    - port: {{ .port }}
      protocol: TCP
{{- end -}}

{{- define "gouache.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}
