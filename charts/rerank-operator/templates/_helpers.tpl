{{/*
Naming and labels, in one place (Helm's chart best practices).
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "rerank-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of this release's objects. Truncated to 63 characters (DNS label limit);
the release name alone when it already contains the chart name.
*/}}
{{- define "rerank-operator.fullname" -}}
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

{{/* "name-version" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "rerank-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "rerank-operator.labels" -}}
helm.sh/chart: {{ include "rerank-operator.chart" . }}
{{ include "rerank-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rerank-operator
{{- end }}

{{/* The immutable subset used by selectors: never add a label here after a release exists. */}}
{{- define "rerank-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rerank-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator pod's selector (the chart's objects other than the operator carry no component). */}}
{{- define "rerank-operator.operatorSelectorLabels" -}}
{{ include "rerank-operator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "rerank-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rerank-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: by digest when one is given, else by tag (default: the chart's appVersion). */}}
{{- define "rerank-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the operator watches the whole cluster. */}}
{{- define "rerank-operator.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{- end }}
{{- end }}

{{/*
The namespaces whose engines the NetworkPolicy guards: networkPolicy.namespaces, else the watched
namespaces, else the release namespace.
*/}}
{{- define "rerank-operator.networkPolicyNamespaces" -}}
{{- $namespaces := .Values.networkPolicy.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $namespaces) }}
{{- end }}

{{/* The sample's Service port (the CRD's default when the sample does not set one). */}}
{{- define "rerank-operator.samplePort" -}}
{{- $service := .Values.sample.spec.service | default dict }}
{{- $service.port | default 8000 }}
{{- end }}

{{/* The model name the sample serves (spec.model.servedModelName, else spec.model.name). */}}
{{- define "rerank-operator.sampleModel" -}}
{{- $model := .Values.sample.spec.model | default dict }}
{{- $model.servedModelName | default $model.name | default "Qwen/Qwen3-Reranker-0.6B" }}
{{- end }}

{{/* The Secret made from registryCredentials. */}}
{{- define "rerank-operator.registrySecretName" -}}
{{- printf "%s-registry" (include "rerank-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* imagePullSecrets: the listed ones, then the one made from registryCredentials. */}}
{{- define "rerank-operator.imagePullSecrets" -}}
{{- $secrets := list }}
{{- range .Values.imagePullSecrets }}{{ $secrets = append $secrets (dict "name" .name) }}{{ end }}
{{- if .Values.registryCredentials.server }}
{{- $secrets = append $secrets (dict "name" (include "rerank-operator.registrySecretName" .)) }}
{{- end }}
{{- toJson $secrets }}
{{- end }}
