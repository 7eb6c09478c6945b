# kube-vrrp — build, test and lab targets. `make help` lists them.
SHELL := /usr/bin/env bash
CARGO ?= cargo
AGENT := target/debug/kube-vrrp-agent
# Kubernetes release of the lab's control plane (kube-apiserver and etcd built from Go modules);
# empty: the one pinned in e2e/controlplane/go.mod. E.g. `make test K8S_VERSION=1.31.14`.
K8S_VERSION ?=
export KUBE_VRRP_K8S_VERSION := $(K8S_VERSION)

.PHONY: help deps build release test unit e2e e2e-ipvs lint doc-check fmt crds crds-check chart-check image image-check bench soak chaos demo e2e-cluster tools controlplane cluster-lab cluster-lab-down

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## debug build of every binary
	$(CARGO) build --workspace --bins

release: ## optimised binaries (benchmarks use these)
	$(CARGO) build --workspace --release --bins

# `make test` builds the image's release binaries (fat LTO, one codegen unit: about 11 minutes
# on two cores) beside the e2e suites, which mostly wait on timers. The build runs at SCHED_IDLE:
# it takes only the CPU the suites leave, so their timing is what it is without it, and the
# wall clock loses the build's 11 minutes. It starts once the control plane is built (a Go
# build that would otherwise share the cores with it). Its output goes to IMAGE_BUILD_LOG.
IMAGE_BUILD_LOG := target/image-build.log
test: deps build unit tools controlplane ## everything: unit, golden, property, lab e2e and cluster scenarios (root), IPVS guest lab, chart and alert rules, the image
	@mkdir -p target
	@echo "make test: building the image's release binaries beside the e2e suites (SCHED_IDLE; log in $(IMAGE_BUILD_LOG))"
	@setsid -w chrt --idle 0 $(CARGO) build --release -p kube-vrrp-agent -p kube-vrrp-operator --bins >$(IMAGE_BUILD_LOG) 2>&1 & build=$$!; \
	trap 'kill -- -$$build 2>/dev/null' EXIT; \
	$(MAKE) --no-print-directory e2e e2e-ipvs chart-check || exit 1; \
	if ! wait $$build; then echo "make test: the image's release build failed (last lines of $(IMAGE_BUILD_LOG)):" >&2; tail -n 40 $(IMAGE_BUILD_LOG) >&2; exit 1; fi; \
	echo "make test: the image's release build: $$(grep -E '^ *Finished' $(IMAGE_BUILD_LOG) | tail -n 1 | sed 's/^ *//')"
	$(MAKE) --no-print-directory image-check
	@echo "make test: all suites passed"

unit: ## every crate's tests: unit, golden, property, simulation, namespace (root)
	$(CARGO) test --workspace --exclude kube-vrrp-e2e --no-fail-fast

e2e: build tools controlplane ## the network-namespace lab against keepalived, and the cluster scenarios against a real kube-apiserver (needs root)
	@if [ "$$(id -u)" != 0 ]; then echo "make e2e: the lab creates network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run as root" >&2; exit 1; fi
	$(CARGO) test -p kube-vrrp-e2e --no-fail-fast -- --test-threads=1 --skip guest_

e2e-ipvs: build ## the IPVS guest lab: real IPVS and health checks (vs keepalived) in a QEMU guest (Debian's cloud kernel, cached in .tools/guest)
	$(CARGO) test -p kube-vrrp-e2e --test ipvs_guest --test checks_guest --no-fail-fast -- --test-threads=1

lint: ## rustfmt, clippy (pedantic, -D warnings), every doc link resolving, CRD YAML up to date
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory doc-check
	$(MAKE) crds-check

# The crates are programs: their docs are read with the private items (the architecture lives
# there), so a module's doc may link to its private parts; a link that resolves to nothing or
# to two things fails.
doc-check: ## rustdoc of every crate, private items included, with -D warnings
	RUSTDOCFLAGS="-D warnings -A rustdoc::private_intra_doc_links" $(CARGO) doc --workspace --no-deps --document-private-items

fmt: ## format the code
	$(CARGO) fmt --all

crds: tools ## regenerate crds/yaml and the chart's copies
	$(CARGO) run -q -p kube-vrrp-crds --bin crdgen
	@if [ -x hack/sync-chart-crds.sh ]; then hack/sync-chart-crds.sh; fi

crds-check: crds ## fail if the generated CRD YAML (and the chart/deploy copies) are out of date
	git diff --exit-code -- crds/yaml charts deploy

deps: ## the Debian packages the lab and checks use (installs only what is missing; root)
	hack/install-deps.sh

tools: deps ## project-local helm, kubectl and validators under .tools/
	hack/install-tools.sh

controlplane: ## kube-apiserver and etcd built from Go modules into .tools/controlplane/ (test tooling; rebuilt only when the pin changes)
	e2e/controlplane/build.sh $(K8S_VERSION)

cluster-lab: deps build tools controlplane ## leave a real control plane, the chart and its operator/agent pods running in the lab; prints KUBECONFIG (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make cluster-lab: the lab needs root" >&2; exit 1; fi
	target/debug/cluster-lab up

cluster-lab-down: ## stop the cluster lab and remove everything it made
	@if [ -x target/debug/cluster-lab ]; then target/debug/cluster-lab down; else echo "no cluster lab binary: nothing to stop"; fi

chart-check: tools ## helm lint/template, manifest validation, promtool rule tests
	hack/check-chart.sh

image: ## the container image as an archive, without a container engine (target/image/kube-vrrp-VERSION.tar)
	$(CARGO) build --release -p kube-vrrp-agent -p kube-vrrp-operator --bins
	hack/image.sh

image-check: deps image ## open the image archive: config, size, both binaries run from its read-only root filesystem (root)
	hack/check-image.sh

bench: release tools controlplane ## planner at 1,000 VIPs x 100 nodes; IPVS sync vs ipvsadm --restore (guest); lab failover/handover and agent CPU/RSS vs keepalived; planned handover loss seen by a client (pings, TCP) vs keepalived; advert timing idle and under a flood; 1,000 real servers checked every second vs keepalived's checker; a wake-up's CPU floor; cluster: apply→answer, API writes, operator RSS at scale, 1,000 LoadBalancer Services (root)
	$(CARGO) bench -p kube-vrrp-plan --bench plan
	$(CARGO) bench -p kube-vrrp-operator --bench allocate
	$(CARGO) build --release -p kube-vrrp-agent --example ipvs_sync_bench
	$(CARGO) run --release -p kube-vrrp-e2e --bin ipvs-bench
	@if [ "$$(id -u)" != 0 ]; then echo "make bench: the lab needs root" >&2; exit 1; fi
	@rm -f target/lab-bench-failed
	KUBE_VRRP_AGENT=target/release/kube-vrrp-agent $(CARGO) run --release -p kube-vrrp-e2e --bin lab-bench -- --daemon both --record bench/lab-bench.jsonl --readme README.md || touch target/lab-bench-failed
	KUBE_VRRP_AGENT=target/release/kube-vrrp-agent $(CARGO) run --release -p kube-vrrp-e2e --bin lab-handover -- --daemon both
	$(CARGO) run --release -p kube-vrrp-e2e --bin wake-floor
	$(CARGO) bench -p kube-vrrp-agent --bench advert_timing
	KUBE_VRRP_AGENT=target/release/kube-vrrp-agent $(CARGO) run --release -p kube-vrrp-e2e --bin checks-bench
	KUBE_VRRP_AGENT=target/release/kube-vrrp-agent KUBE_VRRP_OPERATOR=target/release/kube-vrrp-operator $(CARGO) run --release -p kube-vrrp-e2e --bin cluster-bench
	@# lab-bench's failed runs (windows that were not the steady state) are recorded and printed; the other benches still run, and make bench fails at the end.
	@if [ -e target/lab-bench-failed ]; then echo "make bench: lab-bench had failed agent runs (see its output above)" >&2; exit 1; fi

soak: release ## false failovers under CPU starvation: the agent and keepalived, normal and real-time, 10 min at 10 ms adverts under 16 busy loops and a memory neighbour (root; not in bench or test)
	@if [ "$$(id -u)" != 0 ]; then echo "make soak: the lab needs root" >&2; exit 1; fi
	KUBE_VRRP_AGENT=target/release/kube-vrrp-agent $(CARGO) run --release -p kube-vrrp-e2e --bin soak

chaos: deps build ## chaos runs (root; about 4 min, so not in make test): 100 SIGKILLs of random agents, 100 port flaps in 10 s, 1,000 manifest edits in 60 s under pings, a 1 h wall-clock step; SEED=N replays a run
	@if [ "$$(id -u)" != 0 ]; then echo "make chaos: the lab creates network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run as root" >&2; exit 1; fi
	KUBE_VRRP_AGENT=$(AGENT) $(CARGO) run -q -p kube-vrrp-e2e --bin chaos -- $(if $(SEED),--seed $(SEED))

demo: deps build ## three-node lab with a VirtualIP: status, kill the MASTER, measured failover (needs root)
	@if [ "$$(id -u)" != 0 ]; then echo "make demo: the lab needs root" >&2; exit 1; fi
	KUBE_VRRP_AGENT=$(AGENT) $(CARGO) run -q -p kube-vrrp-e2e --bin lab-demo

e2e-cluster: build tools controlplane ## the core scenarios against the cluster named by KUBECONFIG, or against a cluster lab it brings up and removes (see hack/e2e-cluster.sh)
	hack/e2e-cluster.sh
