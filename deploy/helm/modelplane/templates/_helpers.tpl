{{- define "modelplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelplane.labels" -}}
app.kubernetes.io/name: modelplane-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: modelplane
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelplane.selector" -}}
app.kubernetes.io/name: modelplane-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelplane.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "modelplane.gatewayName" -}}
{{- printf "%s-gateway" (include "modelplane.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelplane.gatewayLabels" -}}
app.kubernetes.io/name: modelplane-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: modelplane
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelplane.gatewaySelector" -}}
app.kubernetes.io/name: modelplane-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
