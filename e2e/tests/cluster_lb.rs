//! LoadBalancer Services against the real cluster lab: a kube-apiserver and etcd built from Go
//! modules, the chart installed with Helm (its default values serve the `kubevrrp.io/vrrp`
//! class), two operator replicas and one agent per node namespace with the chart's RBAC. Each
//! scenario creates a `VirtualIPPool` on the lab's switch and Services of type LoadBalancer,
//! and asserts on what a user sees (`kubectl get svc`, the Service's ingress and Events, the
//! VirtualIP) and on what the client namespace sees (who answers ARP for the address).
//!
//! Needs root, the control plane (`make controlplane`), kubectl and Helm (`make tools`) and the
//! workspace binaries; a missing piece fails with what to run.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, User, poll};
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec};
use kube_vrrp_e2e::probe::{AdvertSniffer, NeighborProber};
use kube_vrrp_e2e::{Mac, exposition, netns};
use serde_json::{Value, json};

/// How often the scenarios look at the API server.
const POLL: Duration = Duration::from_millis(50);
/// The pool's two addresses on the lab's switch (no node, client or lab host uses them).
const FIRST: &str = "192.168.77.200";
const LAST: &str = "192.168.77.201";
/// The pool's advert interval (the pool default for VRRPv3, written out).
const ADVERT: Duration = Duration::from_millis(100);
/// The label the pool's nodeSelector asks for.
const LB_LABEL: &str = "kubevrrp.io/lb";

fn up() -> Cluster {
    netns::require_root();
    let started = Instant::now();
    let cluster =
        Cluster::up(&ClusterSpec::default()).unwrap_or_else(|e| panic!("cluster lab: {e}"));
    eprintln!(
        "cluster lab up in {:.1} s (Kubernetes v{})",
        started.elapsed().as_secs_f64(),
        cluster.control_plane().k8s_version()
    );
    cluster
}

/// [`up`] with the nodes labelled for pool `lan` (`pool`, its manifest), once the operator has
/// read and planned the pool, as it has in a running cluster before Services come.
fn up_with_pool(pool: &str) -> Cluster {
    let cluster = up();
    let user = cluster.user();
    label_nodes(&user);
    user.apply(pool).unwrap();
    wait_pool_status(&cluster);
    cluster
}

/// Pool `lan`: the two addresses, VRRP on the nodes labelled [`LB_LABEL`], n1 preferred.
fn pool_manifest() -> String {
    pool_manifest_of(&[format!("{FIRST}-{LAST}")])
}

/// Pool `lan` with `addresses`, VRRP on the nodes labelled [`LB_LABEL`], n1 preferred.
fn pool_manifest_of(addresses: &[String]) -> String {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
        "metadata": {"name": "lan"},
        "spec": {
            "addresses": addresses,
            "vrrp": {
                "advertInterval": "100ms",
                "nodeSelector": {"matchLabels": {LB_LABEL: "true"}},
                "priorities": [
                    {"nodeName": "n1", "priority": 150},
                    {"nodeName": "n2", "priority": 100},
                    {"nodeName": "n3", "priority": 50},
                ],
            },
        },
    })
    .to_string()
}

/// A LoadBalancer Service of kube-vrrp's class in namespace `default`.
fn service_manifest(name: &str) -> String {
    annotated_service_manifest(name, &json!({}))
}

/// [`service_manifest`] with `annotations`.
fn annotated_service_manifest(name: &str, annotations: &Value) -> String {
    custom_service_manifest(name, annotations, 80, "Cluster")
}

/// A LoadBalancer Service of kube-vrrp's class with `annotations`, one TCP `port` and
/// `externalTrafficPolicy: policy`.
fn custom_service_manifest(name: &str, annotations: &Value, port: u16, policy: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "kubevrrp.io/vrrp",
            "selector": {"app": name},
            "externalTrafficPolicy": policy,
            "ports": [{"name": "http", "port": port, "targetPort": 8080, "protocol": "TCP"}],
        },
    })
    .to_string()
}

/// Gives n1..n3 the label the pool's nodeSelector asks for.
fn label_nodes(user: &User) {
    for node in ["n1", "n2", "n3"] {
        user.kubectl()
            .run(&["label", "node", node, &format!("{LB_LABEL}=true")])
            .unwrap();
    }
}

fn service(user: &User, name: &str) -> Value {
    user.get("service", name, &["-n", "default"]).unwrap()
}

/// `status.loadBalancer.ingress` as (ip, ipMode) pairs.
fn ingress(service: &Value) -> Vec<(String, String)> {
    service
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|i| {
                    let field = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
                    (field("ip"), field("ipMode"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the Service's first ingress entry; returns it and when it was seen.
fn wait_ingress(cluster: &Cluster, name: &str, timeout: Duration) -> ((String, String), Instant) {
    let user = cluster.user();
    let found = poll(&format!("Service {name}: ingress"), timeout, POLL, || {
        Ok(ingress(&service(&user, name)).into_iter().next())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the Service: {}\n{}",
            service(&user, name)["status"],
            logs_tail(cluster)
        )
    });
    (found, Instant::now())
}

/// The Events on Service `name` as (type, reason, message).
fn service_events(user: &User, name: &str) -> Vec<(String, String, String)> {
    let selector = format!("involvedObject.kind=Service,involvedObject.name={name}");
    let list = user
        .kubectl()
        .json(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            &selector,
            "-o",
            "json",
        ])
        .unwrap();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let f = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (f("type"), f("reason"), f("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that Service `name` has a Normal Event of `reason` whose message names `address`.
fn expect_event(user: &User, name: &str, reason: &str, address: &str) {
    let events = service_events(user, name);
    assert!(
        events
            .iter()
            .any(|(kind, r, message)| kind == "Normal" && r == reason && message.contains(address)),
        "no {reason} Event naming {address} on Service {name}: {events:?}"
    );
}

/// Waits until VirtualIP `name` is gone.
fn wait_virtual_ip_gone(cluster: &Cluster, name: &str) {
    let user = cluster.user();
    poll("VirtualIP deleted", Duration::from_secs(30), POLL, || {
        Ok((!virtual_ip_exists(&user, name)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(cluster)));
}

fn virtual_ip_exists(user: &User, name: &str) -> bool {
    user.kubectl()
        .run(&["get", "vip", "-o", "name"])
        .unwrap()
        .lines()
        .any(|l| l.trim() == format!("virtualip.kubevrrp.io/{name}"))
}

/// The first reply at or after `since` from `mac`, as seen by the prober.
fn first_reply_from(prober: &NeighborProber, since: Instant, mac: Mac) -> Option<Instant> {
    prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= since && r.mac == mac)
        .map(|r| r.at)
        .min()
}

/// Asserts that every answer the prober has seen came from `mac`.
fn assert_only_from(prober: &NeighborProber, mac: Mac) {
    let others: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.mac != mac)
        .collect();
    assert!(
        others.is_empty(),
        "{} answered from another MAC than {mac}: {others:?}",
        prober.target()
    );
}

fn logs_tail(cluster: &Cluster) -> String {
    cluster
        .pods()
        .map(|p| {
            let log = p.log();
            let all: Vec<&str> = log.lines().collect();
            format!(
                "===== {} =====\n{}",
                p.name(),
                all[all.len().saturating_sub(20)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// RFC 5798 Master_Down_Interval of a backup of `priority` at [`ADVERT`].
fn master_down_interval(priority: u8) -> Duration {
    ADVERT * 3 + ADVERT * (256 - u32::from(priority)) / 256
}

#[test]
fn a_load_balancer_service_gets_a_pool_address_whose_ingress_appears_only_once_a_node_answers_as_master()
 {
    let started = Instant::now();
    let cluster = up();
    let user = cluster.user();
    user.apply(&pool_manifest()).unwrap();
    let address: IpAddr = FIRST.parse().unwrap();
    let prober = cluster
        .lab()
        .probe(address, Duration::from_millis(20))
        .unwrap();
    user.apply(&service_manifest("web")).unwrap();

    // The address is allocated at once: a VirtualIP for it, naming the Service.
    let vip_name = "lb-192-168-77-200";
    let vip = poll(
        "VirtualIP of the Service",
        Duration::from_secs(30),
        POLL,
        || {
            virtual_ip_exists(&user, vip_name)
                .then(|| user.vip(vip_name))
                .transpose()
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    assert!(
        vip["spec"]["addresses"][0]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("{FIRST}/"))),
        "{vip}"
    );
    let row = user.get_vip_row(vip_name).unwrap();
    assert_eq!(
        row.get("SERVICE").map(String::as_str),
        Some("default/web"),
        "{row:?}"
    );

    // No node carries the pool's label: no MASTER, so no ingress and no answer, for 5 s.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        let svc = service(&user, "web");
        assert!(
            ingress(&svc).is_empty(),
            "ingress without a MASTER: {}",
            svc["status"]
        );
        std::thread::sleep(POLL);
    }
    assert!(
        prober.replies().is_empty(),
        "the address answered without a MASTER: {:?}",
        prober.replies()
    );
    expect_event(&user, "web", "AddressAllocated", FIRST);

    // Labelling the nodes deploys the VirtualIP: n1 (150) becomes MASTER, then ingress.
    let labelled = Instant::now();
    label_nodes(&user);
    let ((ip, mode), seen) = wait_ingress(&cluster, "web", Duration::from_secs(30));
    assert_eq!((ip.as_str(), mode.as_str()), (FIRST, "VIP"));
    let n1 = cluster.lab().node_mac(1).unwrap();
    let answered = first_reply_from(&prober, labelled, n1).unwrap_or_else(|| {
        panic!(
            "ingress {ip} was written before the address answered from n1's MAC {n1}; replies: {:?}",
            prober.replies()
        )
    });
    assert!(
        answered <= seen,
        "ingress seen before the first answer from the MASTER"
    );
    assert_only_from(&prober, n1);
    let vip = user.vip(vip_name).unwrap();
    assert_eq!(
        vip["status"]["master"].as_str(),
        Some("n1"),
        "{}",
        vip["status"]
    );
    let table = user
        .kubectl()
        .run(&["get", "svc", "web", "-n", "default"])
        .unwrap();
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(3) == Some(FIRST)),
        "kubectl get svc: {table}"
    );
    eprintln!(
        "nodes labelled → address answers from n1 after {:.0} ms; → ingress seen after {:.0} ms",
        ms(answered - labelled),
        ms(seen - labelled)
    );

    // Deleting the Service removes the VirtualIP; the address stops answering.
    let deleted = Instant::now();
    user.kubectl()
        .run(&["delete", "service", "web", "-n", "default", "--wait=false"])
        .unwrap();
    wait_virtual_ip_gone(&cluster, vip_name);
    let gone = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let late: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.at > gone + Duration::from_secs(1))
        .collect();
    assert!(
        late.is_empty(),
        "the address still answers after its VirtualIP went: {late:?}"
    );
    eprintln!(
        "Service deleted → VirtualIP gone after {:.0} ms",
        ms(gone - deleted)
    );

    // The address is back in the pool: the next Service gets the lowest free one, .200 again.
    user.apply(&service_manifest("api")).unwrap();
    let ((ip, _), _) = wait_ingress(&cluster, "api", Duration::from_secs(30));
    assert_eq!(ip, FIRST, "the released address did not return to the pool");
    eprintln!(
        "scenario lb-lifecycle: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_load_balancer_service_answers_from_its_master_and_moves_to_the_backup_within_a_second_when_the_master_dies()
 {
    let started = Instant::now();
    let mut cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();
    let address: IpAddr = FIRST.parse().unwrap();
    let prober = cluster
        .lab()
        .probe(address, Duration::from_millis(10))
        .unwrap();

    let created = Instant::now();
    user.apply(&service_manifest("web")).unwrap();
    let ((ip, mode), seen) = wait_ingress(&cluster, "web", Duration::from_secs(30));
    assert_eq!((ip.as_str(), mode.as_str()), (FIRST, "VIP"));
    let n1 = cluster.lab().node_mac(1).unwrap();
    let answered = prober
        .wait_for_reply(created, Duration::from_secs(5), |m| m == n1)
        .unwrap_or_else(|| panic!("{FIRST} never answered from n1: {:?}", prober.replies()))
        .at;
    eprintln!(
        "Service created → answers from n1 after {:.0} ms; → ingress seen after {:.0} ms",
        ms(answered - created),
        ms(seen - created)
    );
    assert!(
        answered <= seen,
        "ingress seen before the address answered from its MASTER"
    );

    // n1 dies hard: its switch port cut, its agent SIGKILLed.
    std::thread::sleep(Duration::from_secs(1));
    let died = Instant::now();
    cluster.lab().cut(1).unwrap();
    cluster.agent(1).unwrap().kill().unwrap();
    let n2 = cluster.lab().node_mac(2).unwrap();
    let moved = prober
        .wait_for_reply(died, Duration::from_secs(5), |m| m == n2)
        .unwrap_or_else(|| panic!("{FIRST} did not answer from n2 after n1 died"))
        .at;
    let mdi = master_down_interval(100);
    eprintln!(
        "n1 died → {FIRST} answers from n2 after {:.0} ms (Master_Down_Interval of n2: {:.0} ms)",
        ms(moved - died),
        ms(mdi)
    );
    assert!(
        moved - died < Duration::from_secs(1),
        "failover took {:.0} ms",
        ms(moved - died)
    );
    // The Service keeps its address throughout; the VirtualIP names its new MASTER.
    poll("status.master n2", Duration::from_secs(15), POLL, || {
        let vip = user.vip("lb-192-168-77-200")?;
        Ok((vip["status"]["master"].as_str() == Some("n2")).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    assert_eq!(
        ingress(&service(&user, "web")),
        vec![(FIRST.to_owned(), "VIP".to_owned())]
    );
    eprintln!(
        "scenario lb-failover: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Every version of the objects under API path `collection` written after resource version
/// `since`, oldest first, as a watch from `since` replays them (none skipped, unlike a poll).
/// The watch ends after `seconds`.
fn writes_since(cluster: &Cluster, collection: &str, since: u64, seconds: u32) -> Vec<Value> {
    let path = format!("{collection}?watch=1&resourceVersion={since}&timeoutSeconds={seconds}");
    let stream = cluster
        .control_plane()
        .admin()
        .run(&["get", "--raw", &path])
        .unwrap();
    serde_json::Deserializer::from_str(&stream)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .filter(|event| event["type"] == "ADDED" || event["type"] == "MODIFIED")
        .map(|event| event["object"].clone())
        .collect()
}

/// An object's resource version as a number: with etcd it is the revision of the object's
/// last write, one counter for every kind, so two kinds' writes are ordered by it.
fn revision(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no resource version: {}", object["metadata"]))
}

/// The addresses VrrpNode `node` reports holding as MASTER of instance `instance`.
fn held_by(node: &Value, instance: &str) -> Vec<String> {
    node.pointer("/status/instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i["name"] == instance && i["state"] == "Master")
        .flat_map(|i| i["vipsHeld"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            a.as_str()
                .map(|a| a.split('/').next().unwrap_or(a).to_owned())
        })
        .collect()
}

/// Whether VrrpNode `node`'s spec gives instance `instance` the address `address`.
fn planned(node: &Value, instance: &str, address: &str) -> bool {
    node.pointer("/spec/instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i["name"] == instance)
        .flat_map(|i| i["addresses"].as_array().cloned().unwrap_or_default())
        .any(|a| {
            a.as_str()
                .is_some_and(|a| a.split('/').next() == Some(address))
        })
}

/// Sends `signal` to the agents of n1..n3.
fn signal_agents(cluster: &mut Cluster, signal: nix::sys::signal::Signal) {
    for n in 1..=3 {
        cluster.agent(n).unwrap().signal(signal).unwrap();
    }
}

#[test]
fn a_service_joining_a_shared_virtual_router_gets_its_ingress_only_once_a_node_reports_holding_its_address()
 {
    use nix::sys::signal::Signal;
    let started = Instant::now();
    let mut cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();

    // The first Service: its address on a shared router whose MASTER is n1 (priority 150).
    user.apply(&service_manifest("web")).unwrap();
    let ((ip, _), _) = wait_ingress(&cluster, "web", Duration::from_secs(30));
    assert_eq!(ip, FIRST);
    let router = user.vip("lb-192-168-77-200").unwrap()["spec"]["virtualRouter"]
        .as_str()
        .unwrap_or_else(|| panic!("lb-192-168-77-200 joined no virtual router"))
        .to_owned();
    poll(
        "n1 holding the first address",
        Duration::from_secs(15),
        POLL,
        || {
            let n1 = user.get("vrrpnode", "n1", &[])?;
            Ok(held_by(&n1, &router)
                .contains(&FIRST.to_owned())
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    // The API server's list carries the current revision (kubectl's own list does not).
    let list = cluster
        .control_plane()
        .admin()
        .run(&["get", "--raw", "/apis/kubevrrp.io/v1alpha1/vrrpnodes"])
        .unwrap();
    let since = revision(&serde_json::from_str(&list).unwrap());

    // Every agent frozen (SIGSTOP): n1's last report, MASTER of the router holding the first
    // address, stays fresh, and no agent applies the spec that adds the second address. The
    // kernel keeps the first address on n1, and no backup takes over (none runs).
    signal_agents(&mut cluster, Signal::SIGSTOP);
    let created = Instant::now();
    user.apply(&service_manifest("api")).unwrap();
    let planned_on_n1 = poll(
        "the second address planned on n1",
        Duration::from_secs(15),
        POLL,
        || {
            let n1 = user.get("vrrpnode", "n1", &[])?;
            Ok(planned(&n1, &router, LAST).then_some(()))
        },
    );
    // For 3 s nobody holds the second address: no ingress, and no MASTER shown for it.
    let mut early = Vec::new();
    let watch_until = Instant::now() + Duration::from_secs(3);
    while planned_on_n1.is_ok() && Instant::now() < watch_until {
        let svc = service(&user, "api");
        if !ingress(&svc).is_empty() && !early.iter().any(|e: &String| e.starts_with("ingress")) {
            early.push(format!("ingress {}", svc["status"]));
        }
        let vip = user.vip("lb-192-168-77-201").unwrap_or_default();
        if vip.pointer("/status/master").is_some()
            && !early.iter().any(|e: &String| e.starts_with("VirtualIP"))
        {
            early.push(format!("VirtualIP status {}", vip["status"]));
        }
        std::thread::sleep(POLL);
    }
    let waiting = user.vip("lb-192-168-77-201").unwrap_or_default();
    // Thawed before asserting, so that a failure leaves no frozen agent behind.
    signal_agents(&mut cluster, Signal::SIGCONT);
    let frozen = created.elapsed();
    planned_on_n1.unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    assert!(
        early.is_empty(),
        "shown before any node held {LAST}: {}",
        early.join("; ")
    );
    assert_eq!(
        waiting["spec"]["virtualRouter"].as_str(),
        Some(router.as_str()),
        "the second address did not join the first one's router: {}",
        waiting["spec"]
    );
    // Its first status is written only once the apply grace (10 s) is over: until then none;
    // if one is written, it says why there is no MASTER.
    let ready = user::conditions(&waiting)
        .into_iter()
        .find(|c| c.kind == "Ready");
    assert!(
        waiting.pointer("/status/state").is_none()
            || (waiting["status"]["state"] == "Pending"
                && ready.is_some_and(|r| r.reason == "AddressNotHeld")),
        "{}",
        waiting["status"]
    );

    // Thawed, n1 adds the address and reports it; then the ingress comes.
    let ((ip, mode), seen) = wait_ingress(&cluster, "api", Duration::from_secs(30));
    assert_eq!((ip.as_str(), mode.as_str()), (LAST, "VIP"));

    // Every write since, replayed: the nodes' reports and the Service's versions, ordered by
    // revision. Some node reported holding the address before the ingress was written.
    let reports = writes_since(&cluster, "/apis/kubevrrp.io/v1alpha1/vrrpnodes", since, 2);
    let services = writes_since(&cluster, "/api/v1/namespaces/default/services", since, 2);
    let first_holding = reports
        .iter()
        .find(|n| held_by(n, &router).contains(&LAST.to_owned()))
        .unwrap_or_else(|| panic!("no node reported holding {LAST}: {reports:#?}"));
    let (held, holder) = (
        revision(first_holding),
        first_holding["metadata"]["name"]
            .as_str()
            .unwrap_or_default(),
    );
    let ingress_written = revision(
        services
            .iter()
            .filter(|s| s["metadata"]["name"] == "api")
            .find(|s| !ingress(s).is_empty())
            .unwrap_or_else(|| panic!("no write gave Service api its ingress: {services:#?}")),
    );
    assert!(
        held < ingress_written,
        "the ingress of api (revision {ingress_written}) was written before any node reported \
         holding {LAST} (first: {holder} at revision {held})"
    );
    eprintln!(
        "api: no ingress while the agents were frozen; {holder} reported holding {LAST} at \
         revision {held}, the ingress written at revision {ingress_written}, seen {:.0} ms after \
         the create (agents frozen for the first {:.0} ms)",
        ms(seen - created),
        ms(frozen)
    );
    eprintln!(
        "scenario lb-shared-router-order: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits until Service `name` has a Warning Event of `reason`; returns its message.
fn wait_warning(cluster: &Cluster, name: &str, reason: &str) -> String {
    let user = cluster.user();
    poll(
        &format!("Service {name}: Warning {reason}"),
        Duration::from_secs(30),
        POLL,
        || {
            Ok(service_events(&user, name)
                .into_iter()
                .find(|(kind, r, _)| kind == "Warning" && r == reason)
                .map(|(_, _, message)| message))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; its Events: {:?}\n{}",
            service_events(&user, name),
            logs_tail(cluster)
        )
    })
}

/// The uid of every VirtualIP, by name.
fn virtual_ip_uids(user: &User) -> Vec<(String, String)> {
    let list = user.kubectl().json(&["get", "vip", "-o", "json"]).unwrap();
    let mut uids: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let field = |k: &str| v["metadata"][k].as_str().unwrap_or_default().to_owned();
            (field("name"), field("uid"))
        })
        .collect();
    uids.sort();
    uids
}

#[test]
fn requested_addresses_are_honoured_refusals_and_exhaustion_are_events_and_an_operator_restart_keeps_every_allocation()
 {
    let started = Instant::now();
    let mut cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();
    let ips = "kubevrrp.io/load-balancer-ips";

    // A requested address is honoured even though a lower one is free.
    user.apply(&annotated_service_manifest("pinned", &json!({ips: LAST})))
        .unwrap();
    let ((ip, _), _) = wait_ingress(&cluster, "pinned", Duration::from_secs(30));
    assert_eq!(ip, LAST);

    // A request outside every pool is refused with a Warning Event, and no ingress.
    user.apply(&annotated_service_manifest(
        "outside",
        &json!({ips: "192.168.77.250"}),
    ))
    .unwrap();
    let why = wait_warning(&cluster, "outside", "AddressNotInPool");
    assert!(why.contains("192.168.77.250"), "{why}");
    assert!(ingress(&service(&user, "outside")).is_empty());

    // The next Service gets the lowest free address; the one after finds the pool exhausted.
    user.apply(&service_manifest("auto")).unwrap();
    let ((ip, _), _) = wait_ingress(&cluster, "auto", Duration::from_secs(30));
    assert_eq!(ip, FIRST);
    user.apply(&service_manifest("late")).unwrap();
    let why = wait_warning(&cluster, "late", "PoolExhausted");
    eprintln!("late: {why}");
    assert!(ingress(&service(&user, "late")).is_empty());

    // Both operator replicas killed and started again: every allocation stays as it was,
    // read back from the VirtualIPs and the Services' ingress, and no VirtualIP is recreated.
    let before = virtual_ip_uids(&user);
    assert_eq!(
        before.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["lb-192-168-77-200", "lb-192-168-77-201"]
    );
    let restarted = Instant::now();
    for pod in cluster.operators() {
        pod.kill().unwrap();
    }
    for pod in cluster.operators() {
        pod.start().unwrap();
    }
    for pod in cluster.operators() {
        pod.wait_ready(Duration::from_secs(60)).unwrap();
    }
    // Two sync passes of the replica that holds the Lease after the restart (its
    // kube_vrrp_reconcile_total counts from 0; a standby counts passes that do nothing), then
    // time for more.
    poll(
        "two sync passes of the leader after the restart",
        Duration::from_secs(60),
        POLL,
        || {
            let leader = cluster.leader()?;
            let Some(pod) = cluster.pods().nth(leader) else {
                return Ok(None);
            };
            let Some(port) = pod.named_port("metrics") else {
                return Ok(None);
            };
            let body = pod.get(port, "/metrics")?;
            let passes = exposition::value(
                &String::from_utf8_lossy(&body.body),
                "kube_vrrp_reconcile_total",
                &[],
            );
            Ok(passes.filter(|p| *p >= 2.0).map(|_| ()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    std::thread::sleep(Duration::from_secs(2));
    eprintln!(
        "operators restarted; allocations checked {:.1} s later",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(virtual_ip_uids(&user), before, "a VirtualIP was recreated");
    for (name, address) in [("pinned", LAST), ("auto", FIRST)] {
        assert_eq!(
            ingress(&service(&user, name)),
            vec![(address.to_owned(), "VIP".to_owned())],
            "{name} after the restart"
        );
    }
    assert!(ingress(&service(&user, "late")).is_empty());

    // Recovery: the pinned Service goes; its address returns to the pool once no node holds it,
    // and the waiting Service gets it.
    let deleted = Instant::now();
    user.kubectl()
        .run(&[
            "delete",
            "service",
            "pinned",
            "-n",
            "default",
            "--wait=false",
        ])
        .unwrap();
    let ((ip, _), seen) = wait_ingress(&cluster, "late", Duration::from_secs(30));
    assert_eq!(ip, LAST);
    eprintln!(
        "pinned deleted → late gets {LAST} after {:.0} ms",
        ms(seen - deleted)
    );
    assert!(ingress(&service(&user, "outside")).is_empty());
    eprintln!(
        "scenario lb-requests: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn services_share_an_address_only_with_the_same_key_and_distinct_ports() {
    let started = Instant::now();
    let cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();
    let shared = |key: Option<&str>| {
        let mut a = json!({"kubevrrp.io/load-balancer-ips": FIRST});
        if let Some(key) = key {
            a["kubevrrp.io/allow-shared-ip"] = json!(key);
        }
        a
    };
    user.apply(&custom_service_manifest(
        "http",
        &shared(Some("front")),
        80,
        "Cluster",
    ))
    .unwrap();
    user.apply(&custom_service_manifest(
        "https",
        &shared(Some("front")),
        443,
        "Cluster",
    ))
    .unwrap();
    for name in ["http", "https"] {
        let ((ip, mode), _) = wait_ingress(&cluster, name, Duration::from_secs(30));
        assert_eq!((ip.as_str(), mode.as_str()), (FIRST, "VIP"), "{name}");
    }
    let vip = user.vip("lb-192-168-77-200").unwrap();
    assert_eq!(
        vip["metadata"]["annotations"]["kubevrrp.io/services"].as_str(),
        Some("default/http,default/https"),
        "one VirtualIP serves both"
    );
    assert_eq!(virtual_ip_uids(&user).len(), 1);

    // Without the key, or with the key and a port already served, the address is refused.
    user.apply(&custom_service_manifest(
        "nokey",
        &shared(None),
        8080,
        "Cluster",
    ))
    .unwrap();
    let why = wait_warning(&cluster, "nokey", "AddressInUse");
    eprintln!("nokey: {why}");
    user.apply(&custom_service_manifest(
        "collide",
        &shared(Some("front")),
        80,
        "Cluster",
    ))
    .unwrap();
    let why = wait_warning(&cluster, "collide", "PortsCollide");
    eprintln!("collide: {why}");
    for name in ["nokey", "collide"] {
        assert!(
            ingress(&service(&user, name)).is_empty(),
            "{name} got an ingress"
        );
    }
    // The address answers from one MAC, the MASTER's.
    let prober = cluster
        .lab()
        .probe(FIRST.parse().unwrap(), Duration::from_millis(20))
        .unwrap();
    let n1 = cluster.lab().node_mac(1).unwrap();
    let since = Instant::now();
    assert!(
        prober
            .wait_for_reply(since, Duration::from_secs(5), |m| m == n1)
            .is_some(),
        "{FIRST} does not answer from n1"
    );
    eprintln!(
        "scenario lb-sharing: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// An EndpointSlice of Service `service` with one ready endpoint on `node`.
fn endpoint_slice(service: &str, node: &str) -> String {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.9.5"], "conditions": {"ready": true}, "nodeName": node}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
    .to_string()
}

#[test]
fn with_external_traffic_policy_local_the_address_follows_the_node_with_the_ready_endpoint() {
    let started = Instant::now();
    let cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();
    let prober = cluster
        .lab()
        .probe(FIRST.parse().unwrap(), Duration::from_millis(20))
        .unwrap();
    // The lab runs no kube-controller-manager: the EndpointSlices are written by hand.
    user.apply(&custom_service_manifest("local", &json!({}), 80, "Local"))
        .unwrap();
    let vip_name = "lb-192-168-77-200";
    poll(
        "VirtualIP of the Service",
        Duration::from_secs(30),
        POLL,
        || Ok(virtual_ip_exists(&user, vip_name).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    let vip = user.vip(vip_name).unwrap();
    assert_eq!(
        vip["spec"]["track"]["endpoints"][0]["service"]["name"].as_str(),
        Some("local"),
        "{}",
        vip["spec"]
    );
    // No ready endpoint anywhere: no node may hold it, so nothing answers and no ingress.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        prober.replies().is_empty(),
        "answered without an endpoint: {:?}",
        prober.replies()
    );
    assert!(ingress(&service(&user, "local")).is_empty());

    // The endpoint on n2 (priority 100, below n1's 150): n2 holds the address.
    let placed = Instant::now();
    user.apply(&endpoint_slice("local", "n2")).unwrap();
    let n2 = cluster.lab().node_mac(2).unwrap();
    let at = prober
        .wait_for_reply(placed, Duration::from_secs(10), |m| m == n2)
        .unwrap_or_else(|| panic!("{FIRST} never answered from n2: {:?}", prober.replies()))
        .at;
    let ((ip, _), seen) = wait_ingress(&cluster, "local", Duration::from_secs(30));
    assert_eq!(ip, FIRST);
    eprintln!(
        "endpoint on n2 → answers from n2 after {:.0} ms, ingress seen after {:.0} ms",
        ms(at - placed),
        ms(seen - placed)
    );

    // The endpoint moves to n3: so does the address, and n2 stops answering.
    let moved = Instant::now();
    user.apply(&endpoint_slice("local", "n3")).unwrap();
    let n3 = cluster.lab().node_mac(3).unwrap();
    let at = prober
        .wait_for_reply(moved, Duration::from_secs(10), |m| m == n3)
        .unwrap_or_else(|| panic!("{FIRST} never answered from n3: {:?}", prober.replies()))
        .at;
    eprintln!(
        "endpoint moved to n3 → answers from n3 after {:.0} ms",
        ms(at - moved)
    );
    std::thread::sleep(Duration::from_secs(1));
    let check = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let stale: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= check && r.mac != n3)
        .collect();
    assert!(stale.is_empty(), "another node still answers: {stale:?}");
    poll("status.master n3", Duration::from_secs(15), POLL, || {
        let vip = user.vip(vip_name)?;
        Ok((vip["status"]["master"].as_str() == Some("n3")).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    eprintln!(
        "scenario lb-local: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits for the pool's status (the operator has read and planned it).
fn wait_pool_status(cluster: &Cluster) {
    let user = cluster.user();
    poll("pool status", Duration::from_secs(30), POLL, || {
        let pool = user.get("virtualippool", "lan", &[])?;
        Ok(pool.get("status").filter(|s| !s.is_null()).map(|_| ()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(cluster)));
}

/// The VRID the planner gave VirtualIP `name`.
fn vrid(user: &User, name: &str) -> u8 {
    let vip = user.vip(name).unwrap();
    vip["status"]["virtualRouterID"]
        .as_u64()
        .and_then(|v| u8::try_from(v).ok())
        .unwrap_or_else(|| panic!("VirtualIP {name} has no VRID: {}", vip["status"]))
}

/// When each step of a graceful release was seen, from the change that caused it.
struct Released {
    priority_zero: Duration,
    last_answer: Option<Duration>,
    virtual_ip_gone: Duration,
    ingress_cleared: Duration,
}

/// After `changed`, the Service `service` loses [`FIRST`] gracefully: its MASTER n1 sends a
/// priority-0 advert for `vrid`, then the address goes from every node and stops answering;
/// the VirtualIP `lb-192-168-77-200` is deleted and the Service's ingress cleared.
fn expect_graceful_release(
    cluster: &Cluster,
    prober: &NeighborProber,
    sniffer: &AdvertSniffer,
    service_name: &str,
    vrid: u8,
    changed: Instant,
) -> Released {
    let user = cluster.user();
    let vip_name = "lb-192-168-77-200";
    wait_virtual_ip_gone(cluster, vip_name);
    let virtual_ip_gone = changed.elapsed();
    poll(
        &format!("Service {service_name}: ingress cleared"),
        Duration::from_secs(30),
        POLL,
        || {
            Ok(ingress(&service(&user, service_name))
                .is_empty()
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            service(&user, service_name)["status"],
            logs_tail(cluster)
        )
    });
    let ingress_cleared = changed.elapsed();
    let address: IpAddr = FIRST.parse().unwrap();
    poll(
        "no node holds the address",
        Duration::from_secs(10),
        POLL,
        || {
            Ok(cluster
                .lab()
                .holders(address)
                .map_err(kube_vrrp_e2e::cluster::ClusterError::Lab)?
                .is_empty()
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(cluster)));
    // Settled: one more second in which nothing may answer or advertise for the router.
    std::thread::sleep(Duration::from_millis(500));
    let quiet = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let adverts: Vec<_> = sniffer
        .adverts()
        .into_iter()
        .filter(|a| a.at >= changed && a.wire.vrid == vrid)
        .collect();
    let goodbye = adverts
        .iter()
        .find(|a| a.node == 1 && a.wire.priority == 0)
        .unwrap_or_else(|| {
            panic!("n1 sent no priority-0 advert for VRID {vrid}; adverts since the change: {adverts:?}")
        });
    let after: Vec<_> = adverts.iter().filter(|a| a.at >= quiet).collect();
    assert!(
        after.is_empty(),
        "VRID {vrid} still advertised after its VirtualIP went: {after:?}"
    );
    let late: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= quiet)
        .collect();
    assert!(late.is_empty(), "{FIRST} still answers: {late:?}");
    let others: Vec<_> = adverts.iter().filter(|a| a.node != 1).collect();
    if !others.is_empty() {
        eprintln!("adverts of other nodes for VRID {vrid} during the release: {others:?}");
    }
    Released {
        priority_zero: goodbye.at - changed,
        last_answer: prober
            .replies()
            .into_iter()
            .map(|r| r.at)
            .filter(|at| *at >= changed)
            .max()
            .map(|at| at - changed),
        virtual_ip_gone,
        ingress_cleared,
    }
}

fn report(what: &str, r: &Released) {
    eprintln!(
        "{what} → priority 0 from n1 after {:.0} ms, last ARP answer {}, VirtualIP gone {:.0} ms, ingress cleared {:.0} ms",
        ms(r.priority_zero),
        r.last_answer
            .map_or_else(|| "none".to_owned(), |d| format!("{:.0} ms", ms(d))),
        ms(r.virtual_ip_gone),
        ms(r.ingress_cleared)
    );
}

/// Patches Service `name` in `default` (merge patch).
fn patch_service(user: &User, name: &str, patch: &Value) -> Result<String, String> {
    user.kubectl()
        .run(&[
            "patch",
            "service",
            name,
            "-n",
            "default",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .map_err(|e| e.to_string())
}

/// Waits until Service `name`'s first ingress is [`FIRST`] and n1 answers for it.
fn expect_first_from_n1(cluster: &Cluster, prober: &NeighborProber, name: &str, since: Instant) {
    let ((ip, mode), _) = wait_ingress(cluster, name, Duration::from_secs(30));
    assert_eq!(
        (ip.as_str(), mode.as_str()),
        (FIRST, "VIP"),
        "{name}: the released address did not return to the pool"
    );
    let n1 = cluster.lab().node_mac(1).unwrap();
    assert!(
        prober
            .wait_for_reply(since, Duration::from_secs(5), |m| m == n1)
            .is_some(),
        "{FIRST} does not answer from n1 for {name}"
    );
}

#[test]
fn a_service_changed_to_another_type_or_class_or_whose_pool_goes_loses_its_address_after_a_priority_zero_handover_and_the_pool_gets_it_back()
 {
    let started = Instant::now();
    let mut cluster = up_with_pool(&pool_manifest());
    let user = cluster.user();
    let prober = cluster
        .lab()
        .probe(FIRST.parse().unwrap(), Duration::from_millis(20))
        .unwrap();
    let sniffer = cluster.lab().sniff().unwrap();
    let vip_name = "lb-192-168-77-200";

    // 1. Type: LoadBalancer → ClusterIP.
    let created = Instant::now();
    user.apply(&service_manifest("web")).unwrap();
    expect_first_from_n1(&cluster, &prober, "web", created);
    let id = vrid(&user, vip_name);
    let changed = Instant::now();
    patch_service(&user, "web", &json!({"spec": {"type": "ClusterIP"}})).unwrap();
    let released = expect_graceful_release(&cluster, &prober, &sniffer, "web", id, changed);
    report("type LoadBalancer → ClusterIP", &released);
    expect_event(&user, "web", "AddressReleased", FIRST);

    // The address is back in the pool: the next Service gets it.
    let created = Instant::now();
    user.apply(&service_manifest("next")).unwrap();
    expect_first_from_n1(&cluster, &prober, "next", created);

    // 2. Class: `spec.loadBalancerClass` cannot change while the Service stays a
    // LoadBalancer, so the change passes through another type; with the operators stopped
    // meanwhile, the operator finds a Service of another class that a VirtualIP of ours
    // still names (and an ingress the API server cleared on the way).
    let refused = patch_service(
        &user,
        "next",
        &json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    );
    assert!(
        refused.is_err(),
        "the API server let a LoadBalancer Service change its class: {refused:?}"
    );
    let id = vrid(&user, vip_name);
    for pod in cluster.operators() {
        pod.kill().unwrap();
    }
    patch_service(
        &user,
        "next",
        &json!({"spec": {"type": "ClusterIP", "loadBalancerClass": null}}),
    )
    .unwrap();
    patch_service(
        &user,
        "next",
        &json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}}),
    )
    .unwrap();
    assert!(virtual_ip_exists(&user, vip_name));
    let changed = Instant::now();
    for pod in cluster.operators() {
        pod.start().unwrap();
    }
    let released = expect_graceful_release(&cluster, &prober, &sniffer, "next", id, changed);
    report(
        "class kubevrrp.io/vrrp → example.com/other (operators restarted)",
        &released,
    );

    // 3. The pool removed: the Service keeps no address, is told why, and gets it back
    // when the pool returns.
    let created = Instant::now();
    user.apply(&service_manifest("third")).unwrap();
    expect_first_from_n1(&cluster, &prober, "third", created);
    let id = vrid(&user, vip_name);
    let changed = Instant::now();
    user.delete("virtualippool", "lan").unwrap();
    let released = expect_graceful_release(&cluster, &prober, &sniffer, "third", id, changed);
    report("VirtualIPPool deleted", &released);
    let why = wait_warning(&cluster, "third", "NoPool");
    eprintln!("third: {why}");
    let restored = Instant::now();
    user.apply(&pool_manifest()).unwrap();
    expect_first_from_n1(&cluster, &prober, "third", restored);
    eprintln!(
        "pool created again → third answers after {:.0} ms",
        ms(restored.elapsed())
    );
    eprintln!(
        "scenario lb-type-class-pool: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The pool's IPv6 addresses (no lab host uses them).
const FIRST_V6: &str = "fd00:77::c8";
const LAST_V6: &str = "fd00:77::c9";

#[test]
fn a_require_dual_stack_service_gets_one_address_per_family_and_both_answer_from_the_master() {
    let started = Instant::now();
    let cluster = up_with_pool(&pool_manifest_of(&[
        format!("{FIRST}-{LAST}"),
        format!("{FIRST_V6}-{LAST_V6}"),
    ]));
    let user = cluster.user();
    let v4 = cluster
        .lab()
        .probe(FIRST.parse().unwrap(), Duration::from_millis(20))
        .unwrap();
    let v6 = cluster
        .lab()
        .probe(FIRST_V6.parse().unwrap(), Duration::from_millis(20))
        .unwrap();
    let mut manifest: Value = serde_json::from_str(&service_manifest("dual")).unwrap();
    manifest["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    manifest["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
    let created = Instant::now();
    user.apply(&manifest.to_string()).unwrap();

    // The API server gives it a ClusterIP of each family; the operator an address of each.
    let both = poll(
        "both ingress addresses",
        Duration::from_secs(30),
        POLL,
        || {
            let found = ingress(&service(&user, "dual"));
            Ok((found.len() == 2).then_some(found))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            service(&user, "dual")["status"],
            logs_tail(&cluster)
        )
    });
    let seen = created.elapsed();
    let mut ips: Vec<(String, String)> = both;
    ips.sort();
    assert_eq!(
        ips,
        vec![
            (FIRST.to_owned(), "VIP".to_owned()),
            (FIRST_V6.to_owned(), "VIP".to_owned())
        ]
    );
    let svc = service(&user, "dual");
    assert_eq!(
        svc["spec"]["clusterIPs"].as_array().map(Vec::len),
        Some(2),
        "{}",
        svc["spec"]
    );
    for name in ["lb-192-168-77-200", "lb-fd00-77-0-0-0-0-0-c8"] {
        assert!(
            virtual_ip_exists(&user, name),
            "no VirtualIP {name}: {}",
            user.kubectl().run(&["get", "vip"]).unwrap()
        );
        poll(
            &format!("{name}: MASTER n1"),
            Duration::from_secs(15),
            POLL,
            || Ok((user.vip(name)?["status"]["master"].as_str() == Some("n1")).then_some(())),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", logs_tail(&cluster)));
    }

    // Both answer from the MASTER: ARP for the IPv4 address, NDP for the IPv6 one.
    let n1 = cluster.lab().node_mac(1).unwrap();
    let mut answered = Vec::new();
    for (prober, address) in [(&v4, FIRST), (&v6, FIRST_V6)] {
        let at = prober
            .wait_for_reply(created, Duration::from_secs(10), |m| m == n1)
            .unwrap_or_else(|| panic!("{address} never answered from n1: {:?}", prober.replies()))
            .at;
        answered.push(at - created);
        assert_only_from(prober, n1);
    }
    eprintln!(
        "dual-stack Service created → {FIRST} answers from n1 after {:.0} ms, {FIRST_V6} after {:.0} ms, both ingress seen after {:.0} ms",
        ms(answered[0]),
        ms(answered[1]),
        ms(seen)
    );

    // `kubectl get svc` shows both as EXTERNAL-IP.
    let table = user
        .kubectl()
        .run(&["get", "svc", "dual", "-n", "default"])
        .unwrap();
    let external = table
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_owned();
    let mut shown: Vec<&str> = external.split(',').collect();
    shown.sort_unstable();
    assert_eq!(shown, [FIRST, FIRST_V6], "kubectl get svc:\n{table}");
    eprintln!("kubectl get svc dual:\n{table}");
    eprintln!(
        "scenario lb-dual-stack: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
