//! The LoadBalancer benchmark of `cluster-bench`: 1,000 Services of type LoadBalancer created
//! at once in a fresh cluster lab (one pool of a /22 on the lab's switch, the chart's
//! defaults): the time until every Service has its ingress address and every VirtualIP a
//! MASTER, the operator replicas' RSS meanwhile, and the API writes per Service while they
//! are assigned and at steady state afterwards (from the API server's audit log).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube_vrrp_e2e::cluster::audit;
use kube_vrrp_e2e::cluster::user::User;
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec, VIP_NODE_LABEL};
use serde_json::{Value, json};

use super::apiserver::{Breakdown, Scrape};
use super::{rss, writes};

/// Services created.
pub const SERVICES: usize = 1000;
/// Their namespace.
const NAMESPACE: &str = "bench";
/// The pool's addresses: 1,022 usable on the lab's switch (no lab host uses 10.200/22).
const POOL_CIDR: &str = "10.200.0.0/22";
/// Concurrent `kubectl create` processes, each creating its share of the Services.
const CREATORS: usize = 16;
/// How often the Services and VirtualIPs are listed (and the operators' RSS read).
const POLL: Duration = Duration::from_millis(500);
/// How long the assignment may take before the bench reports what it reached.
const TIMEOUT: Duration = Duration::from_secs(300);

fn pool() -> Value {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
        "metadata": {"name": "bench"},
        "spec": {
            "addresses": [POOL_CIDR],
            "vrrp": {"interface": "eth0", "nodeSelector": {"matchLabels": {VIP_NODE_LABEL: "true"}}},
        },
    })
}

/// Service `i` of the benchmark: kube-vrrp's class, one TCP port, no NodePorts.
fn service(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("lb-{i:04}"), "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "kubevrrp.io/vrrp",
            "allocateLoadBalancerNodePorts": false,
            "selector": {"app": format!("lb-{i:04}")},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    })
}

/// Creates every Service, [`CREATORS`] `kubectl create` processes at once.
fn create_services(user: &User) -> anyhow::Result<()> {
    let services: Vec<Value> = (0..SERVICES).map(service).collect();
    let share = SERVICES.div_ceil(CREATORS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = services
            .chunks(share)
            .map(|chunk| {
                let kubectl = user.kubectl().clone();
                let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk}).to_string();
                scope.spawn(move || {
                    kubectl.run_with_input(&["create", "-f", "-", "-o", "name"], &list)
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a kubectl create thread panicked"))??;
        }
        Ok(())
    })
}

/// Services with an ingress address (distinct addresses), and VirtualIPs with a MASTER by
/// node.
struct Progress {
    with_ingress: usize,
    addresses: usize,
    masters: BTreeMap<String, usize>,
}

impl Progress {
    fn read(user: &User) -> anyhow::Result<Self> {
        let services = user
            .kubectl()
            .json(&["get", "services", "-n", NAMESPACE, "-o", "json"])?;
        let mut addresses = BTreeSet::new();
        let mut with_ingress = 0;
        for s in services["items"].as_array().map_or(&[][..], Vec::as_slice) {
            let ingress = s
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            if !ingress.is_empty() {
                with_ingress += 1;
            }
            addresses.extend(
                ingress
                    .iter()
                    .filter_map(|i| i["ip"].as_str().map(str::to_owned)),
            );
        }
        let vips = user.kubectl().json(&["get", "virtualips", "-o", "json"])?;
        let mut masters = BTreeMap::new();
        for v in vips["items"].as_array().map_or(&[][..], Vec::as_slice) {
            if let Some(master) = v.pointer("/status/master").and_then(Value::as_str) {
                *masters.entry(master.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(Self {
            with_ingress,
            addresses: addresses.len(),
            masters,
        })
    }

    fn mastered(&self) -> usize {
        self.masters.values().sum()
    }
}

fn print_writes(title: &str, counted: &BTreeMap<(String, String), usize>) {
    println!("\n{title}\n");
    println!("| who | write | count | per Service |");
    println!("| --- | --- | ---: | ---: |");
    for ((who, what), n) in counted {
        println!(
            "| {who} | {what} | {n} | {:.2} |",
            *n as f64 / SERVICES as f64
        );
    }
    let total: usize = counted.values().sum();
    let operator: usize = counted
        .iter()
        .filter(|((who, _), _)| *who == "operator")
        .map(|(_, n)| n)
        .sum();
    println!(
        "| all | | {total} | {:.2} (operator {:.2}) |",
        total as f64 / SERVICES as f64,
        operator as f64 / SERVICES as f64
    );
}

/// The Events kube-vrrp published (events.k8s.io), by the kind they regard and their reason,
/// with how many were repeats counted in a series instead of written anew.
fn print_events(user: &User) -> anyhow::Result<()> {
    let list = user
        .kubectl()
        .json(&["get", "events.events.k8s.io", "-A", "-o", "json"])?;
    let mut counted: BTreeMap<(String, String), (usize, u64)> = BTreeMap::new();
    for e in list["items"].as_array().map_or(&[][..], Vec::as_slice) {
        if !e["reportingController"]
            .as_str()
            .is_some_and(|c| c.starts_with("kube-vrrp"))
        {
            continue;
        }
        let kind = e.pointer("/regarding/kind").and_then(Value::as_str);
        let reason = e["reason"].as_str();
        let entry = counted
            .entry((
                kind.unwrap_or("?").to_owned(),
                reason.unwrap_or("?").to_owned(),
            ))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += e
            .pointer("/series/count")
            .and_then(Value::as_u64)
            .map_or(1, |n| n.max(1));
    }
    println!("\nEvents published by kube-vrrp (events.k8s.io), by the kind they regard:\n");
    println!("| regarding | reason | Event objects | occurrences (series counted) |");
    println!("| --- | --- | ---: | ---: |");
    for ((kind, reason), (objects, occurrences)) in &counted {
        println!("| {kind} | {reason} | {objects} | {occurrences} |");
    }
    Ok(())
}

/// User plus system CPU time `pid` has used, in seconds (`/proc/PID/stat`, clock ticks of
/// 1/100 s as on every Linux this lab runs on).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("/proc/PID/stat field")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line; 12 and 13 after the command.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Runs the benchmark in a cluster lab of its own and prints its tables.
pub fn run(steady_window: Duration) -> anyhow::Result<()> {
    let cluster = Cluster::up(&ClusterSpec::default())?;
    let user = cluster.user();
    user.apply(&pool().to_string())?;
    user.kubectl().run(&["create", "namespace", NAMESPACE])?;
    // The pool read and planned before the Services come, as in a running cluster.
    kube_vrrp_e2e::cluster::user::poll("pool status", Duration::from_secs(60), POLL, || {
        let pool = user.get("virtualippool", "bench", &[])?;
        Ok(pool.get("status").filter(|s| !s.is_null()).map(|_| ()))
    })?;
    std::thread::sleep(Duration::from_secs(5));
    let operators: Vec<(String, u32)> = cluster
        .pods()
        .take(2)
        .map(|p| {
            Ok((
                p.name().to_owned(),
                p.pid().context("operator not running")?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let before: Vec<f64> = operators
        .iter()
        .map(|(_, pid)| rss(*pid).map(|(now, _)| now))
        .collect::<anyhow::Result<_>>()?;

    // The processes whose CPU time is reported: the operators, then the control plane.
    let mut measured = operators.clone();
    let plane = cluster.control_plane();
    measured.push((
        "kube-apiserver".to_owned(),
        plane
            .apiserver_pid()
            .context("kube-apiserver not running")?,
    ));
    measured.push(("etcd".to_owned(), plane.etcd_pid()));
    let cpu_before: Vec<f64> = measured
        .iter()
        .map(|(_, pid)| cpu_seconds(*pid))
        .collect::<anyhow::Result<_>>()?;
    let metrics_before = Scrape::parse(&user.kubectl().run(&["get", "--raw", "/metrics"])?);
    let from = jiff::Timestamp::now();
    let started = Instant::now();
    create_services(&user)?;
    let created = started.elapsed();
    let mut peak = vec![0.0_f64; operators.len()];
    let (mut all_ingress, mut all_master) = (None, None);
    let mut last = Progress::read(&user)?;
    let mut looks = 0_u32;
    while started.elapsed() < TIMEOUT && (all_ingress.is_none() || all_master.is_none()) {
        std::thread::sleep(POLL);
        for (i, (_, pid)) in operators.iter().enumerate() {
            peak[i] = peak[i].max(rss(*pid)?.0);
        }
        last = Progress::read(&user)?;
        looks += 1;
        if all_ingress.is_none() && last.with_ingress == SERVICES && last.addresses == SERVICES {
            all_ingress = Some(started.elapsed());
        }
        if all_master.is_none() && last.mastered() >= SERVICES {
            all_master = Some(started.elapsed());
        }
    }
    let done = jiff::Timestamp::now();
    let assigning = started.elapsed();
    let metrics_after = Scrape::parse(&user.kubectl().run(&["get", "--raw", "/metrics"])?);
    let cpu_used: Vec<f64> = measured
        .iter()
        .zip(&cpu_before)
        .map(|((_, pid), before)| cpu_seconds(*pid).map(|now| now - before))
        .collect::<anyhow::Result<_>>()?;
    let secs = |d: Option<Duration>| {
        d.map_or_else(
            || format!("not within {} s", TIMEOUT.as_secs()),
            |d| {
                format!(
                    "{:.1} s ({:.1} s after the last create)",
                    d.as_secs_f64(),
                    d.saturating_sub(created).as_secs_f64()
                )
            },
        )
    };
    println!(
        "\n{SERVICES} LoadBalancer Services (pool {POOL_CIDR}, chart defaults, {} nodes), created by {CREATORS} concurrent `kubectl create` in {:.1} s:\n",
        cluster.lab().node_count(),
        created.as_secs_f64()
    );
    println!(
        "| from the first create to (Services and VirtualIPs listed every {:.2} s on average) | measured (goal: 30 s) |",
        started.elapsed().saturating_sub(created).as_secs_f64() / f64::from(looks.max(1))
    );
    println!("| --- | ---: |");
    println!(
        "| every Service has its own ingress address | {} ({} of {SERVICES}, {} distinct addresses, at the last look) |",
        secs(all_ingress),
        last.with_ingress,
        last.addresses
    );
    println!(
        "| every VirtualIP has a MASTER | {} ({} of {SERVICES}; by node: {:?}) |",
        secs(all_master),
        last.mastered(),
        last.masters
    );

    // Steady state afterwards.
    std::thread::sleep(Duration::from_secs(10));
    let steady_from = jiff::Timestamp::now();
    std::thread::sleep(steady_window);
    let steady_to = jiff::Timestamp::now();
    let leader = cluster.leader()?;
    println!(
        "\n| operator replica | role | CPU while assigning | RSS before | peak RSS while assigning (sampled) | RSS after | VmHWM |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (i, (name, pid)) in operators.iter().enumerate() {
        let (now, hwm) = rss(*pid)?;
        let role = if i == leader { "leader" } else { "standby" };
        println!(
            "| {name} | {role} | {:.1} s | {:.1} MiB | {:.1} MiB | {now:.1} MiB | {hwm:.1} MiB |",
            cpu_used[i], before[i], peak[i]
        );
    }
    println!(
        "\nCPU time while assigning ({:.1} s): {}",
        assigning.as_secs_f64(),
        measured
            .iter()
            .zip(&cpu_used)
            .map(|((name, _), used)| format!("{name} {used:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Breakdown::between(&metrics_before, &metrics_after).print(12);
    print_events(&user)?;
    let events = audit::read(&cluster.control_plane().audit_log())?;
    print_writes(
        &format!(
            "API writes from the first create until every Service was assigned ({:.1} s), from the audit log:",
            assigning.as_secs_f64()
        ),
        &writes(&events, from, done),
    );
    print_writes(
        &format!(
            "API writes at steady state afterwards, over {} s:",
            steady_window.as_secs()
        ),
        &writes(&events, steady_from, steady_to),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_services_are_a_thousand_distinct_load_balancers_without_node_ports() {
        let services: Vec<Value> = (0..SERVICES).map(service).collect();
        let names: BTreeSet<&str> = services
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names.len(), 1000);
        assert!(services.iter().all(|s| s["spec"]["type"] == "LoadBalancer"
            && s["spec"]["allocateLoadBalancerNodePorts"] == false));
    }

    #[test]
    fn the_pool_holds_enough_addresses_for_every_service() {
        let net: ipnet::Ipv4Net = POOL_CIDR.parse().unwrap();
        // Network and broadcast addresses are not handed out.
        assert!(net.hosts().count() >= SERVICES);
    }
}
