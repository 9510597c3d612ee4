//go:build tools

// Package tools pins, for `go mod tidy`, the packages behind helm.sh/helm/v4/cmd/helm (a main package
// cannot be imported, so its own imports stand in for it).
package tools

import (
	_ "helm.sh/helm/v4/pkg/cmd"
	_ "helm.sh/helm/v4/pkg/kube"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)
