{{/* Name of the chart, overridable. */}}
{{- define "extensions-runtime.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "extensions-runtime.fullname" -}}
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

{{- define "extensions-runtime.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of the release. */}}
{{- define "extensions-runtime.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extensions-runtime.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object and pod: app.kubernetes.io/* and ameide.io/*. */}}
{{- define "extensions-runtime.labels" -}}
helm.sh/chart: {{ include "extensions-runtime.chart" . }}
{{ include "extensions-runtime.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: runtime
app.kubernetes.io/part-of: ameide
app.kubernetes.io/managed-by: {{ .Release.Service }}
ameide.io/environment: {{ .Values.ameide.environment | quote }}
ameide.io/tier: {{ .Values.ameide.tier | quote }}
ameide.io/tenant-kind: {{ .Values.ameide.tenantKind | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "extensions-runtime.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "extensions-runtime.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "extensions-runtime.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Where the mounted configuration and secrets live in the container. */}}
{{- define "extensions-runtime.configDir" -}}/etc/extensions-runtime{{- end }}
{{- define "extensions-runtime.secretDir" -}}/var/run/secrets/extensions-runtime{{- end }}
{{- define "extensions-runtime.moduleCacheDir" -}}/var/cache/extensions-runtime{{- end }}

{{/*
The secret keys the chart knows: values key -> Secret key, and the variable it
becomes (env) or the file it is mounted as (file).
*/}}
{{- define "extensions-runtime.secretKeyTable" -}}
s3AccessKeyId: {secretKey: s3-access-key-id, env: EXTENSIONS_RUNTIME_S3_ACCESS_KEY_ID}
s3SecretAccessKey: {secretKey: s3-secret-access-key, env: EXTENSIONS_RUNTIME_S3_SECRET_ACCESS_KEY}
promotionWebhookSecret: {secretKey: promotion-webhook-secret, env: EXTENSIONS_RUNTIME_PROMOTION_WEBHOOK_SECRET}
hostcallSigningKeys: {secretKey: hostcall-signing-keys.json, file: hostcall-signing-keys.json, fileEnv: EXTENSIONS_RUNTIME_HOSTCALL_SIGNING_KEYS_FILE}
authJwks: {secretKey: auth-jwks.json, file: jwks.json, fileEnv: EXTENSIONS_RUNTIME_AUTH_JWKS_FILE}
authHs256Secret: {secretKey: auth-hs256-secret, env: EXTENSIONS_RUNTIME_AUTH_HS256_SECRET}
{{- end }}

{{/* "true" when a wired secret key is mounted as a file (the secret-files volume). */}}
{{- define "extensions-runtime.secretFiles" -}}
{{- $table := include "extensions-runtime.secretKeyTable" . | fromYaml -}}
{{- range $key, $wired := .Values.secrets.keys }}
{{- if and $wired (get $table $key).file }}true{{ end }}
{{- end }}
{{- end }}

{{/* Name of the Secret the pod reads, or "" when no secret is wired. */}}
{{- define "extensions-runtime.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.externalSecret.enabled }}
{{- include "extensions-runtime.fullname" . }}
{{- end }}
{{- end }}

{{/* A setting's value as an environment string (numbers without exponents, maps as JSON). */}}
{{- define "extensions-runtime.envValue" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
Checksum of what the process reads once at start (the environment). The
risk-tier and kill-switch files are hot-reloaded by the service, so editing
them does not restart pods and they are left out.
*/}}
{{- define "extensions-runtime.configChecksum" -}}
{{- $in := dict "settings" .Values.settings "otel" .Values.otel "secrets" .Values.secrets "containerPort" .Values.containerPort }}
{{- toJson $in | sha256sum }}
{{- end }}
