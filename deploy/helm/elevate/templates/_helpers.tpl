{{- define "elevate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "elevate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "elevate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elevate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "elevate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "elevate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "elevate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "elevate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Refuses settings that would run elevate wrongly, before anything is applied. */}}
{{- define "elevate.validate" -}}
{{- $mode := .Values.database.mode -}}
{{- if not (has $mode (list "sqlite" "postgres")) -}}
{{- fail (printf "database.mode must be sqlite or postgres, not %q" $mode) -}}
{{- end -}}
{{- if and (eq $mode "sqlite") (gt (int .Values.replicaCount) 1) -}}
{{- fail "database.mode sqlite runs one replica (one writer per SQLite file): set replicaCount to 1, or use database.mode postgres" -}}
{{- end -}}
{{- if and (eq $mode "postgres") (not .Values.database.postgres.urlSecret.name) -}}
{{- fail "database.mode postgres needs database.postgres.urlSecret.name: a Secret holding the postgres:// URL" -}}
{{- end -}}
{{- if and (not .Values.config) (not .Values.existingConfigMap) -}}
{{- fail "give the config file in config, or name a ConfigMap in existingConfigMap" -}}
{{- end -}}
{{- end -}}
