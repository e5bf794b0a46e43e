{{/* Name of the release's objects: the release name when it already says certrotator. */}}
{{- define "certrotator.fullname" -}}
{{- if contains "certrotator" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-certrotator" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "certrotator.controller.name" -}}{{ include "certrotator.fullname" . }}-controller{{- end -}}
{{- define "certrotator.agent.name" -}}{{ include "certrotator.fullname" . }}-agent{{- end -}}

{{- define "certrotator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every object. Helm's own two labels are left out of deploy/ (plain manifests). */}}
{{- define "certrotator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: certrotator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "certrotator.selector" -}}
app.kubernetes.io/name: certrotator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "certrotator.hostDataDir" -}}
{{- if eq .Values.distribution "rke" -}}{{ .Values.rke.dataDir }}{{- else -}}{{ .Values.rke2.dataDir }}{{- end -}}
{{- end -}}

{{- define "certrotator.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}
