# The pod network of the heat-config-kubelet image; the defaults are the
# originals' addresses. Nothing else (registries, interface names) is assumed.
export DIB_HEAT_KUBELET_BRIDGE=${DIB_HEAT_KUBELET_BRIDGE:-cbr0}
export DIB_HEAT_KUBELET_BRIDGE_ADDRESS=${DIB_HEAT_KUBELET_BRIDGE_ADDRESS:-10.240.1.1/24}
export DIB_HEAT_KUBELET_POD_CIDR=${DIB_HEAT_KUBELET_POD_CIDR:-10.240.1.0/24}
export DIB_HEAT_KUBELET_CLUSTER_CIDR=${DIB_HEAT_KUBELET_CLUSTER_CIDR:-10.240.0.0/16}
export DIB_HEAT_KUBELET_MTU=${DIB_HEAT_KUBELET_MTU:-1450}
# Space-separated registries Docker may reach without TLS; none by default.
export DIB_HEAT_KUBELET_INSECURE_REGISTRIES=${DIB_HEAT_KUBELET_INSECURE_REGISTRIES:-}
