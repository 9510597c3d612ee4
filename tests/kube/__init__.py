"""Tests against Kubernetes' own control plane (kube-apiserver, kube-controller-manager,
kube-scheduler built by tests/tools/install.d/kube.sh; see tests/peers/kube.py)."""
