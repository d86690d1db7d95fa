{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "voice-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: "<release>-<chart>", or the release name when it already contains the chart name.
*/}}
{{- define "voice-gateway.fullname" -}}
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

{{- define "voice-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "voice-gateway.labels" -}}
helm.sh/chart: {{ include "voice-gateway.chart" . }}
{{ include "voice-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: voice-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable across upgrades, never add to them.
*/}}
{{- define "voice-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voice-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "voice-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voice-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest, or repository:tag (tag defaults to appVersion).
*/}}
{{- define "voice-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The name of the port /metrics is served on.
*/}}
{{- define "voice-gateway.metricsPortName" -}}
{{- if .Values.metrics.separatePort }}metrics{{ else }}http{{ end }}
{{- end }}

{{- define "voice-gateway.metricsPort" -}}
{{- if .Values.metrics.separatePort }}{{ .Values.metrics.port }}{{ else }}{{ .Values.containerPort }}{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: preStop sleep + drain timeout + exit grace, unless set.
An explicit value that leaves no time for the drain is refused.
*/}}
{{- define "voice-gateway.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.drain.timeoutSeconds }}
{{- $preStop := int .Values.drain.preStopSleepSeconds }}
{{- $explicit := int .Values.drain.terminationGracePeriodSeconds }}
{{- if gt $explicit 0 }}
{{- if le $explicit (add $drain $preStop) }}
{{- fail (printf "drain.terminationGracePeriodSeconds (%d) must exceed drain.preStopSleepSeconds + drain.timeoutSeconds (%d), or a rollout cuts calls" $explicit (add $drain $preStop)) }}
{{- end }}
{{- $explicit }}
{{- else }}
{{- add $drain $preStop (int .Values.drain.exitGraceSeconds) }}
{{- end }}
{{- end }}

{{/*
PUBLIC_URL: the configured one, else https://<first ingress host> when the ingress is on.
*/}}
{{- define "voice-gateway.publicUrl" -}}
{{- if .Values.config.PUBLIC_URL }}
{{- .Values.config.PUBLIC_URL | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- with (first .Values.ingress.hosts).host }}https://{{ . }}{{ end }}
{{- end }}
{{- end }}

{{/*
The non-secret environment of the gateway, as a dict (values are strings).
*/}}
{{- define "voice-gateway.configEnv" -}}
{{- $env := dict }}
{{- range $key, $value := .Values.config }}
{{- if and (ne (toString $value) "") (ne $key "PUBLIC_URL") (ne $key "AGENT_INSTRUCTIONS_FILE") }}
{{- $_ := set $env $key (toString $value) }}
{{- end }}
{{- end }}
{{- $publicUrl := include "voice-gateway.publicUrl" . }}
{{- if $publicUrl }}
{{- $_ := set $env "PUBLIC_URL" $publicUrl }}
{{- end }}
{{- if .Values.agentInstructions }}
{{- $_ := set $env "AGENT_INSTRUCTIONS_FILE" "/etc/voice-gateway/instructions.txt" }}
{{- else if .Values.config.AGENT_INSTRUCTIONS_FILE }}
{{- $_ := set $env "AGENT_INSTRUCTIONS_FILE" (toString .Values.config.AGENT_INSTRUCTIONS_FILE) }}
{{- end }}
{{- $_ := set $env "HOST" "0.0.0.0" }}
{{- $_ := set $env "PORT" (toString .Values.containerPort) }}
{{- if .Values.metrics.separatePort }}
{{- $_ := set $env "METRICS_PORT" (toString .Values.metrics.port) }}
{{- end }}
{{- $_ := set $env "DRAIN_TIMEOUT_S" (toString .Values.drain.timeoutSeconds) }}
{{- toYaml $env }}
{{- end }}

{{/*
Checks on combinations of values that a schema cannot express.
*/}}
{{- define "voice-gateway.validate" -}}
{{- if and .Values.metrics.separatePort (eq (int .Values.metrics.port) (int .Values.containerPort)) }}
{{- fail "metrics.port must differ from containerPort when metrics.separatePort is true" }}
{{- end }}
{{- if and .Values.agentInstructions .Values.config.AGENT_INSTRUCTIONS }}
{{- fail "set agentInstructions or config.AGENT_INSTRUCTIONS, not both" }}
{{- end }}
{{- if .Values.secrets.existingSecret }}
{{- range $key, $value := .Values.secrets.values }}
{{- if and $value (ne $key "STREAM_TOKEN_SECRET") (ne $key "ADMIN_TOKEN") }}
{{- fail (printf "secrets.values.%s is set together with secrets.existingSecret: put it in the existing Secret instead" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not .Values.autoscaling.targetMemoryUtilizationPercentage) (not .Values.autoscaling.activeCalls.enabled) }}
{{- fail "autoscaling is enabled but has no metric: set targetCPUUtilizationPercentage, targetMemoryUtilizationPercentage or activeCalls.enabled" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
