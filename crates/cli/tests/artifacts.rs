//! Large values in object storage, over the real binary: a workflow passes a 20 MiB
//! output from one worker step to the next, on the filesystem backend and on a real
//! S3-compatible server (`moto` in server mode, started here), the API returns every
//! value whole while the database row holds only a reference, a changed object is
//! refused with `artifact_unreadable` naming the task and the field, and the sweep
//! deletes the objects of a deleted task while it keeps a live task's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, TempDir, pause};

/// The output passed between the steps: 20 MiB of JSON text.
const BIG: usize = 20 << 20;

fn workflow() -> Value {
    json!({
        "name": "big", "version": 1,
        "steps": [
            {"name": "produce", "kind": "worker", "queue": "big", "payload": {"n": "{{ input.n }}"}},
            {"name": "consume", "kind": "worker", "queue": "big",
             "payload": {"data": "{{ steps.produce.output }}"}}
        ]
    })
}

/// A 20 MiB string that is not one byte repeated, so a changed byte changes it.
fn blob() -> String {
    let mut s = String::with_capacity(BIG);
    let mut i: u64 = 0;
    while s.len() < BIG {
        s.push_str(&format!("{i:08x}"));
        i += 1;
    }
    s.truncate(BIG);
    s
}

fn config(url: &str, extra: &str) -> ConfigBuilder {
    ConfigBuilder::new()
        .server("body_limit = \"64MiB\"")
        .raw(&format!("[artifacts]\nurl = \"{url}\"\n{extra}"))
}

/// Claims the next job of queue `big` (waiting for one), as a worker would.
async fn claim(gw: &Gateway) -> Value {
    for _ in 0..600 {
        let body = json!({"queue": "big", "worker_id": "w", "lease_ms": 120000});
        let (status, claimed) = gw.post_json("/v1/workers/claim", &body).await;
        assert_eq!(status, 200, "{claimed}");
        if let Some(job) = claimed["jobs"].as_array().and_then(|j| j.first()) {
            return job.clone();
        }
        pause(Duration::from_millis(50)).await;
    }
    panic!("no job came; output:\n{}", gw.process.output());
}

async fn complete(gw: &Gateway, job: &Value, output: Value) {
    let url = format!(
        "/v1/workers/jobs/{}/complete",
        job["job_id"].as_str().unwrap()
    );
    let (status, body) = gw
        .post_json(&url, &json!({"token": job["token"], "output": output}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn wait_done(gw: &Gateway, task_id: &str) -> Value {
    for _ in 0..600 {
        let task = gw.get_json(&format!("/v1/tasks/{task_id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            return task;
        }
        pause(Duration::from_millis(50)).await;
    }
    panic!(
        "task {task_id} did not finish; output:\n{}",
        gw.process.output()
    );
}

/// Runs one task of `big` to its end: the first job's worker answers the 20 MiB
/// output, the second checks it came whole in its payload and echoes it. Returns the
/// task id.
async fn pass_twenty_mib(gw: &Gateway) -> String {
    let (status, body) = gw.post_json("/v1/workflows", &workflow()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, task) = gw
        .post_json("/v1/tasks", &json!({"workflow": "big", "input": {"n": 1}}))
        .await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let blob = blob();

    let produce = claim(gw).await;
    assert_eq!(produce["step"], "produce");
    complete(gw, &produce, json!({"blob": blob})).await;

    let consume = claim(gw).await;
    assert_eq!(consume["step"], "consume");
    let passed = &consume["payload"]["input"]["data"]["blob"];
    assert!(
        passed.as_str() == Some(blob.as_str()),
        "the second step's payload did not hold the first step's output whole ({} bytes)",
        passed.as_str().map_or(0, str::len)
    );
    complete(gw, &consume, json!({"echo": blob})).await;

    let done = wait_done(gw, &task_id).await;
    assert_eq!(done["status"], "succeeded", "{}", done["last_error"]);
    assert!(done["output"]["echo"].as_str() == Some(blob.as_str()));
    let steps = gw.get_json(&format!("/v1/tasks/{task_id}/steps")).await;
    let produced = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "produce")
        .unwrap();
    assert!(produced["output"]["blob"].as_str() == Some(blob.as_str()));
    task_id
}

/// The `produce` step's output and the task's input as their rows hold them.
fn rows(db: &Path, task_id: &str) -> (String, String) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let output: String = conn
        .query_row(
            "SELECT output FROM steps WHERE task_id = ?1 AND name = 'produce'",
            [task_id],
            |r| r.get(0),
        )
        .unwrap();
    let input: String = conn
        .query_row(
            "SELECT input FROM tasks WHERE task_id = ?1",
            [task_id],
            |r| r.get(0),
        )
        .unwrap();
    (output, input)
}

/// The digest a reference row holds, after checking it is only a reference.
fn referenced_digest(row: &str) -> String {
    assert!(
        row.len() < 300,
        "the row holds more than a reference: {} bytes",
        row.len()
    );
    let value: Value = serde_json::from_str(row).unwrap();
    let reference = &value["$holdfast_artifact"];
    assert!(reference["bytes"].as_u64().unwrap() > BIG as u64, "{row}");
    reference["sha256"].as_str().unwrap().to_owned()
}

async fn assert_unreadable(gw: &Gateway, task_id: &str) {
    let response = gw
        .client
        .get(gw.url(&format!("/v1/tasks/{task_id}/steps")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(body["error"]["code"], "artifact_unreadable", "{body}");
    assert!(message.contains(task_id), "{message}");
    assert!(message.contains("steps.produce.output"), "{message}");
    assert!(message.contains("corrupt"), "{message}");
    // The server keeps serving: the task itself (another object) still reads whole.
    let task = gw.get_json(&format!("/v1/tasks/{task_id}")).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_output_passes_between_steps_on_files_and_a_changed_object_is_refused_by_name() {
    let dir = TempDir::new("artifacts-files");
    let objects = dir.path().join("objects");
    let gw = Gateway::start(&config(&file_url(&objects), ""));
    let task_id = pass_twenty_mib(&gw).await;

    let db = gw.process.store_dir().join("holdfast.db");
    let (output, input) = rows(&db, &task_id);
    let digest = referenced_digest(&output);
    assert_eq!(input, r#"{"n":1}"#, "a small input stays in its row");

    let object: PathBuf = objects.join("tasks").join(&task_id).join(&digest);
    let mut bytes = std::fs::read(&object).unwrap();
    assert!(bytes.len() > BIG);
    bytes[BIG / 2] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    assert_unreadable(&gw, &task_id).await;
}

/// `python3 -m moto.server` on a free port; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Option<Moto> {
        if !support::needs::python_module("moto.server") {
            return None;
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = support::client();
        for _ in 0..200 {
            if http.get(&moto.endpoint).send().await.is_ok() {
                return Some(moto);
            }
            pause(Duration::from_millis(100)).await;
        }
        panic!("moto did not answer on {}", moto.endpoint);
    }

    /// Creates a bucket (an unsigned request: moto checks no signature there).
    async fn create_bucket(&self, bucket: &str) {
        let url = format!("{}/{bucket}", self.endpoint);
        let response = support::client().put(url).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Cuts the last byte off an object, with boto3 (which moto brings).
    fn truncate(&self, bucket: &str, key: &str) {
        let script = format!(
            "import boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1',\n\
                 aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             body = s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read()\n\
             assert len(body) > {BIG}\n\
             s3.put_object(Bucket='{bucket}', Key='{key}', Body=body[:-1])\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_output_passes_between_steps_on_s3_and_a_changed_object_is_refused_by_name() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    moto.create_bucket("holdfast-test").await;
    let envs = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let gw = Gateway::start_with_env(&config("s3://holdfast-test/run-1", ""), &envs);
    let task_id = pass_twenty_mib(&gw).await;

    let db = gw.process.store_dir().join("holdfast.db");
    let (output, _) = rows(&db, &task_id);
    let digest = referenced_digest(&output);
    moto.truncate("holdfast-test", &format!("run-1/tasks/{task_id}/{digest}"));
    assert_unreadable(&gw, &task_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_the_objects_of_a_deleted_task_and_keeps_a_live_ones() {
    let dir = TempDir::new("artifacts-sweep");
    let objects = dir.path().join("objects");
    let extra = "threshold = \"1KiB\"\nsweep_interval = \"1s\"\nsweep_grace = \"1s\"\n";
    let gw = Gateway::start(&config(&file_url(&objects), extra));
    let definition = json!({
        "name": "small", "version": 1,
        "steps": [{"name": "only", "kind": "worker", "queue": "big", "payload": {"n": 1}}]
    });
    let (status, body) = gw.post_json("/v1/workflows", &definition).await;
    assert_eq!(status, 201, "{body}");
    let mut ids = Vec::new();
    for which in ["gone", "kept"] {
        // Inputs over the threshold: each task's input is an object.
        let input = json!({"which": which, "pad": "p".repeat(4096)});
        let (status, task) = gw
            .post_json("/v1/tasks", &json!({"workflow": "small", "input": input}))
            .await;
        assert_eq!(status, 201, "{task}");
        ids.push(task["task_id"].as_str().unwrap().to_owned());
        let job = claim(&gw).await;
        complete(&gw, &job, json!({"out": "o".repeat(4096), "which": which})).await;
        let done = wait_done(&gw, ids.last().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let count =
        |id: &str| std::fs::read_dir(objects.join("tasks").join(id)).map_or(0, |d| d.count());
    assert_eq!(
        count(&ids[0]),
        2,
        "the input and the output of the task to delete"
    );
    assert_eq!(count(&ids[1]), 2);

    // holdfast has no API to delete a task: an operator's retention job deletes rows.
    let db = gw.process.store_dir().join("holdfast.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    for table in ["escalations", "jobs", "events", "steps", "tasks"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE task_id = ?1"),
            [&ids[0]],
        )
        .unwrap();
    }
    drop(conn);

    let mut swept = false;
    for _ in 0..100 {
        if count(&ids[0]) == 0 {
            swept = true;
            break;
        }
        pause(Duration::from_millis(100)).await;
    }
    assert!(
        swept,
        "the deleted task's objects are still there after 10 s"
    );
    assert_eq!(count(&ids[1]), 2, "a live task's objects are kept");
    let kept = gw.get_json(&format!("/v1/tasks/{}", ids[1])).await;
    assert_eq!(kept["input"]["which"], "kept", "{kept}");
    assert_eq!(kept["output"]["out"].as_str().map(str::len), Some(4096));
}
