//! `holdfast eval` end to end over real sockets: the shipped example suite against
//! `holdfast serve` and a scripted `holdfast mock-provider` passes; the same suite
//! against a worse mock fails its gate with exit 1 and names the regressed cases
//! against the baseline; a run interrupted with Ctrl-C resumes without asking a
//! recorded case again; a bad dataset exits 2 with its line and field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{BIN, ConfigBuilder, Gateway, Mock, TempDir, pause, run, serial};

const KEY: &str = "sk-eval-test-key";

/// The example suite shipped in the repository.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../quality/examples")
        .join(name)
}

/// A mock scripted with the example's answers (`extra` TOML first), and a gateway
/// serving the example's routes from it to an `operator` key (which may also read the
/// configuration history, so the run records the version it evaluated).
fn deployment(extra: &str, dir: &TempDir) -> (Mock, Gateway) {
    let answers = std::fs::read_to_string(example("mock-answers.toml")).unwrap();
    let faults = dir.write("faults.toml", &format!("{extra}\n{answers}"));
    let mock = Mock::start("openai", &["--faults", &faults.display().to_string()]);
    let price = "price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }";
    let config = ConfigBuilder::new()
        .target("small", &mock, price)
        .target("judge-model", &mock, price)
        .route("support", &["small"], "")
        .route("judge", &["judge-model"], "")
        .client_key_as("evaluator", "EVAL_KEY", "operator", "qa");
    let gateway = Gateway::start_with_env(&config, &[("EVAL_KEY", KEY)]);
    (mock, gateway)
}

/// `holdfast eval run` of the example against `gateway`, storing in `dir`.
fn eval_run(gateway: &Gateway, dir: &TempDir, run_id: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "eval",
        "run",
        &example("support.toml").display().to_string(),
        "--server",
        &gateway.base,
        "--key",
        KEY,
        "--run-id",
        run_id,
    ]
    .map(String::from)
    .to_vec();
    args.extend(store_args(dir));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

fn store_args(dir: &TempDir) -> Vec<String> {
    vec![
        "--store-url".to_owned(),
        format!("sqlite://{}/evals.db", dir.path().display()),
        "--tenant".to_owned(),
        "qa".to_owned(),
    ]
}

fn holdfast(args: &[String]) -> (Option<i32>, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example's answers with two made worse: the return window is wrong and the
/// jailbreak is obeyed.
const WORSE: &str = r#"
[[replies]]
contains = "return an item?"
answer = "You have 14 days to return an item."

[[replies]]
contains = "discount code"
answer = "Sure! Use CODE-FREE100 at checkout."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_suite_passes_and_a_worse_model_fails_its_gate_against_the_baseline() {
    let _serial = serial().await;
    let dir = TempDir::new("eval");
    let (mock, gateway) = deployment("", &dir);
    let good_json = dir.path().join("good.json");
    let good_html = dir.path().join("good.html");
    let mut args = eval_run(&gateway, &dir, "good", &[]);
    args.extend(["--json".into(), good_json.display().to_string()]);
    args.extend(["--html".into(), good_html.display().to_string()]);
    let (code, stdout, stderr) = holdfast(&args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("12 cases: 12 passed"), "{stdout}");
    assert!(stdout.contains("gate: passed"), "{stdout}");
    let report = read_json(&good_json);
    assert_eq!(report["report"]["gate"]["passed"], true);
    assert_eq!(report["report"]["subject"]["via"], gateway.base.as_str());
    assert_eq!(report["report"]["subject"]["config_version"], 1);
    assert_eq!(report["cases"].as_array().unwrap().len(), 12);
    let page = std::fs::read_to_string(&good_html).unwrap();
    assert!(
        page.contains("<svg") && !page.contains("src="),
        "one self-contained page"
    );
    let served: HashSet<String> = mock
        .requests()
        .await
        .iter()
        .filter_map(|r| r["idempotency_key"].as_str().map(str::to_owned))
        .filter(|k| k.starts_with("eval/good/"))
        .collect();
    assert_eq!(
        served.len(),
        12,
        "every case went through the gateway to the model"
    );

    // The model gets worse: two cases regress.
    let worse = holdfast_mock::Faults::from_toml_str(&format!(
        "{WORSE}\n{}",
        std::fs::read_to_string(example("mock-answers.toml")).unwrap()
    ))
    .unwrap();
    mock.set_faults(serde_json::to_value(&worse).unwrap()).await;
    let worse_json = dir.path().join("worse.json");
    let mut args = eval_run(&gateway, &dir, "worse", &["--baseline", "good"]);
    args.extend(["--json".into(), worse_json.display().to_string()]);
    let (code, stdout, stderr) = holdfast(&args);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("gate: FAILED"), "{stdout}");
    assert!(stdout.contains("regressed returns-window"), "{stdout}");
    assert!(stdout.contains("regressed discount-jailbreak"), "{stdout}");
    let report = read_json(&worse_json)["report"].clone();
    let failed: Vec<&str> = report["gate"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // Two regressions in twelve cases are below the thresholds, but no significant
    // drop against the baseline: a suite this small detects only drops of ~58 points.
    assert_eq!(
        failed,
        [
            "pass_rate all",
            "pass_rate adversarial",
            "pass_rate labeled"
        ],
        "{report}"
    );
    let all = &report["groups"][0];
    assert_eq!(
        (all["tag"].as_str(), all["paired"]["regressed"].as_u64()),
        (Some("all"), Some(2))
    );
    assert!((all["paired"]["p_value"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(report["baseline"]["regressed"].as_array().unwrap().len(), 2);

    // The stored runs: listed, shown and compared later from the store alone.
    let mut list = vec!["eval".to_owned(), "list".to_owned(), "--json".to_owned()];
    list.extend(store_args(&dir));
    let (code, stdout, _) = holdfast(&list);
    assert_eq!(code, Some(0));
    let runs: Value = serde_json::from_str(&stdout).unwrap();
    let listed: Vec<(&str, bool)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap(), r["gate_passed"] == true))
        .collect();
    assert_eq!(listed, [("worse", false), ("good", true)]);
    let mut compare = vec!["eval", "compare", "worse", "good"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    compare.extend(store_args(&dir));
    let (code, stdout, _) = holdfast(&compare);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("2 regressed, 0 improved"), "{stdout}");
    let mut show = vec!["eval".to_owned(), "show".to_owned(), "good".to_owned()];
    show.extend(store_args(&dir));
    let (code, stdout, _) = holdfast(&show);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("run good"), "{stdout}");
}

/// The example dataset's case ids.
fn case_ids() -> HashSet<String> {
    std::fs::read_to_string(example("support.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Case ids the mock was asked for in run `run_id`, from its request log.
async fn asked(mock: &Mock, run_id: &str) -> HashSet<String> {
    let prefix = format!("eval/{run_id}/");
    mock.requests()
        .await
        .iter()
        .filter_map(|r| {
            r["idempotency_key"]
                .as_str()?
                .strip_prefix(&prefix)
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_without_asking_a_recorded_case_again() {
    let _serial = serial().await;
    let dir = TempDir::new("eval-resume");
    let (mock, gateway) = deployment("latency = \"300ms\"", &dir);
    let args = eval_run(&gateway, &dir, "resume", &["--concurrency", "2"]);
    let child = Command::new(BIN)
        .args(&args)
        .env_remove("HOLDFAST_SERVER")
        .env_remove("HOLDFAST_CLIENT_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two cases in flight at once, 300 ms each: the runner asks a new case only once one
    // has been recorded, so six asked means at least four recorded.
    for _ in 0..200 {
        if asked(&mock, "resume").await.len() >= 6 {
            break;
        }
        pause(Duration::from_millis(20)).await;
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted:"), "{stderr}");

    let store_url = format!("sqlite://{}/evals.db", dir.path().display());
    let store = holdfast_store::open(&store_url).await.unwrap();
    let recorded: HashSet<String> = store
        .eval_results("qa", "resume")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.case_id)
        .collect();
    drop(store);
    assert!(
        (4..12).contains(&recorded.len()),
        "stopped part-way: {recorded:?}"
    );
    let first = asked(&mock, "resume").await;
    assert!(recorded.is_subset(&first));
    mock.reset().await;

    let (code, stdout, stderr) = holdfast(&args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{} of 12 cases recorded before", recorded.len())),
        "{stderr}"
    );
    assert!(stdout.contains("12 cases: 12 passed"), "{stdout}");
    let second = asked(&mock, "resume").await;
    assert!(
        second.is_disjoint(&recorded),
        "recorded cases asked again: {:?}",
        second.intersection(&recorded).collect::<Vec<_>>()
    );
    // A case in flight at the interrupt may be answered by the gateway's replay of its
    // idempotency key without reaching the model again; a case never sent must be.
    let never_sent: HashSet<String> = case_ids().difference(&first).cloned().collect();
    assert!(
        never_sent.is_subset(&second),
        "{never_sent:?} not all in {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_dataset_exits_2_with_its_line_and_field_and_calls_nothing() {
    let dir = TempDir::new("eval-bad");
    let suite = dir.write(
        "bad.toml",
        "name = \"bad\"\ndataset = \"bad.jsonl\"\n[task]\nroute = \"support\"\n",
    );
    dir.write(
        "bad.jsonl",
        "{\"id\": \"a\", \"input\": [{\"role\": \"user\", \"content\": \"hi\"}], \"assert\": [{\"type\": \"contains\", \"value\": \"x\"}], \"tags\": [\"labeled\"]}\n\
         {\"id\": \"b\", \"input\": [{\"role\": \"user\", \"content\": \"hi\"}], \"assert\": [{\"type\": \"regex\", \"value\": \"(\"}], \"tags\": [\"labeled\"]}\n",
    );
    let mut args: Vec<String> = [
        "eval",
        "run",
        &suite.display().to_string(),
        "--server",
        "http://127.0.0.1:9",
    ]
    .map(String::from)
    .to_vec();
    args.extend(store_args(&dir));
    let (code, _, stderr) = holdfast(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:2: assert[0].value: not a regular expression"),
        "{stderr}"
    );
}
