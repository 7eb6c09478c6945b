{{/* Names, labels and switches shared by the templates. */}}

{{- define "kube-vrrp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, plus the chart name unless already in it. */}}
{{- define "kube-vrrp.fullname" -}}
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

{{- define "kube-vrrp.operator.fullname" -}}
{{- printf "%s-operator" (include "kube-vrrp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-vrrp.agent.fullname" -}}
{{- printf "%s-agent" (include "kube-vrrp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-vrrp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kube-vrrp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-vrrp
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "agent"). */}}
{{- define "kube-vrrp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-vrrp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kube-vrrp.componentLabels" -}}
{{ include "kube-vrrp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Pod template labels: no chart version, so a chart-only upgrade restarts no pod. */}}
{{- define "kube-vrrp.podLabels" -}}
{{ include "kube-vrrp.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kube-vrrp
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "kube-vrrp.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "kube-vrrp.agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.leaseNamespace" -}}
{{- default .Release.Namespace .Values.operator.leaderElection.namespace }}
{{- end }}

{{- define "kube-vrrp.agent.secretsNamespace" -}}
{{- default .Release.Namespace .Values.agent.secrets.namespace }}
{{- end }}

{{/*
A true/false/"auto" switch: include with (dict "ctx" $ "value" X "api" "group/version/Kind" "name" "path.in.values").
Renders "true" or "false"; "auto" means "when the cluster serves that API".
*/}}
{{- define "kube-vrrp.switch" -}}
{{- if kindIs "bool" .value }}
{{- .value }}
{{- else if eq (toString .value) "auto" }}
{{- .ctx.Capabilities.APIVersions.Has .api }}
{{- else }}
{{- fail (printf "%s must be true, false or \"auto\", not %v" .name .value) }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.serviceMonitor.enabled" -}}
{{- include "kube-vrrp.switch" (dict "ctx" . "value" .Values.monitoring.serviceMonitor.enabled "api" "monitoring.coreos.com/v1/ServiceMonitor" "name" "monitoring.serviceMonitor.enabled") }}
{{- end }}

{{- define "kube-vrrp.prometheusRule.enabled" -}}
{{- include "kube-vrrp.switch" (dict "ctx" . "value" .Values.monitoring.prometheusRule.enabled "api" "monitoring.coreos.com/v1/PrometheusRule" "name" "monitoring.prometheusRule.enabled") }}
{{- end }}

{{- define "kube-vrrp.ownNodeStatusPolicy.enabled" -}}
{{- include "kube-vrrp.switch" (dict "ctx" . "value" .Values.agent.ownNodeStatusPolicy "api" "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" "name" "agent.ownNodeStatusPolicy") }}
{{- end }}

{{/*
The agent container's securityContext: agent.securityContext, with SYS_NICE added for
agent.realtimePriority and IPC_LOCK for agent.lockMemory.
*/}}
{{- define "kube-vrrp.agentSecurityContext" -}}
{{- $context := deepCopy .Values.agent.securityContext -}}
{{- $capabilities := default dict $context.capabilities -}}
{{- $add := default list $capabilities.add -}}
{{- if gt (int .Values.agent.realtimePriority) 0 -}}
{{- $add = append $add "SYS_NICE" -}}
{{- end -}}
{{- if .Values.agent.lockMemory -}}
{{- $add = append $add "IPC_LOCK" -}}
{{- end -}}
{{- if $add -}}
{{- $_ := set $capabilities "add" (uniq $add) -}}
{{- $_ := set $context "capabilities" $capabilities -}}
{{- end -}}
{{- toYaml $context -}}
{{- end -}}
