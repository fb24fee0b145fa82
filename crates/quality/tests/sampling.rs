//! Production scoring over a real store (SQLite) and a scripted judge: sampled answers
//! are graded by the suite's `[production]` graders and kept, a spent budget keeps
//! samples unscored, a full queue drops and counts, the share is honoured, and a
//! sample promoted to a case lands in the dataset only when the suite accepts it, and
//! the scorer runs on a thread of its own at the lowest CPU priority.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use holdfast_policy::{Clock, SystemClock};
use holdfast_quality::sampling::{self, Exchange, Plan, Sampler};
use holdfast_quality::{Answer, Chat, Subject, SubjectError, Suite, TaskCall};
use holdfast_store::{SampleFilter, SampleStatus, Store};
use serde_json::{Value, json};

/// A judge that gives 0.9 to answers mentioning "parcel", 0.2 to others, at $0.001.
#[derive(Default)]
struct Judge {
    asked: AtomicUsize,
}

#[async_trait]
impl Subject for Judge {
    fn describe(&self) -> Value {
        json!({"via": "scripted"})
    }

    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        assert_eq!(call.route, "judge");
        let prompt = call.body["messages"][1]["content"].as_str().unwrap();
        let answer = prompt.split("Answer:\n").nth(1).unwrap();
        let score = if answer.contains("parcel") { 0.9 } else { 0.2 };
        Ok(Answer {
            text: json!({"score": score, "reason": "scripted"}).to_string(),
            cost_usd: 0.001,
            ..Answer::default()
        })
    }

    async fn task(&self, _call: TaskCall) -> Result<Answer, SubjectError> {
        Err(SubjectError::new("invalid_input", "no workflows here"))
    }
}

const SUITE: &str = "name = \"support\"\ndataset = \"support.jsonl\"\n[task]\nroute = \"support\"\n\
    [judge]\nroute = \"judge\"\n[production]\nassert = [\n  { type = \"rubric\", value = \"helpful\" },\n  \
    { type = \"contains\", value = \"parcel\", ignore_case = true },\n]\n";

const CASE: &str = r#"{"id": "c1", "input": [{"role": "user", "content": "hi"}], "expected": "hello", "assert": [{"type": "equals"}], "tags": ["labeled"]}"#;

fn plan(share: f64, budget: f64) -> Plan {
    let suite = Suite::parse(("support.toml", SUITE), ("support.jsonl", CASE)).unwrap();
    Plan {
        suite: Arc::new(suite),
        share,
        budget_per_hour: budget,
        retention: Duration::from_secs(3600),
    }
}

fn exchange(i: usize, text: &str) -> Exchange {
    Exchange {
        tenant: "acme".into(),
        task_type: "support".into(),
        request_id: format!("req-{i}"),
        input: json!({"messages": [{"role": "user", "content": "Where is my order?"}]}),
        answer: Answer {
            text: text.into(),
            cost_usd: 0.01,
            ..Answer::default()
        },
        latency: Duration::from_millis(20),
        at_ms: SystemClock::new().unix_millis(),
    }
}

struct Fixture {
    dir: PathBuf,
    store: Arc<dyn Store>,
}

impl Fixture {
    async fn new(name: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("holdfast-sampling-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = holdfast_store::open(&format!("sqlite://{}/samples.db", dir.display()))
            .await
            .unwrap();
        Fixture { dir, store }
    }

    async fn samples(&self) -> Vec<holdfast_store::QualitySample> {
        let filter = SampleFilter {
            limit: 100,
            ..SampleFilter::default()
        };
        self.store.list_quality_samples(&filter).await.unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Offers `texts` through a sampler over `plan`, then lets the scorer finish.
async fn score_all(
    f: &Fixture,
    plan: Plan,
    texts: &[&str],
) -> (Vec<(String, sampling::TaskStats)>, Arc<Judge>) {
    let (sampler, scorer) = Sampler::new(vec![plan], 64, 7);
    for (i, text) in texts.iter().enumerate() {
        assert!(sampler.wants("support"));
        sampler.offer(exchange(i, text));
    }
    let judge = Arc::new(Judge::default());
    let subject: Arc<dyn Subject> = judge.clone();
    let stats = {
        let running =
            tokio::spawn(scorer.run(f.store.clone(), subject, Arc::new(SystemClock::new())));
        // The scorer stops once the last sampler is gone and the queue is empty.
        let stats_before_drop = sampler.stats();
        drop(sampler);
        running.await.unwrap();
        stats_before_drop
    };
    (stats, judge)
}

#[tokio::test]
async fn sampled_answers_are_scored_by_the_production_graders_and_kept() {
    let f = Fixture::new("scored").await;
    let (stats, judge) = score_all(
        &f,
        plan(1.0, 1.0),
        &["Your parcel left today.", "I cannot help."],
    )
    .await;
    assert_eq!(stats[0].1.sampled, 2);
    assert_eq!(judge.asked.load(Ordering::SeqCst), 2);
    let samples = f.samples().await;
    assert_eq!(samples.len(), 2);
    let by_request = |id: &str| samples.iter().find(|s| s.request_id == id).unwrap();
    let good = by_request("req-0");
    assert_eq!(good.status, SampleStatus::Scored);
    // (0.9 from the judge + 1 from contains) / 2.
    assert!((good.score.unwrap() - 0.95).abs() < 1e-9, "{good:?}");
    assert_eq!(good.judge_cost_usd, 0.001);
    assert_eq!(good.input["messages"][0]["content"], "Where is my order?");
    assert_eq!(good.answer["text"], "Your parcel left today.");
    assert_eq!(good.verdicts.as_array().unwrap().len(), 2);
    let bad = by_request("req-1");
    assert!((bad.score.unwrap() - 0.1).abs() < 1e-9, "{bad:?}");
}

#[tokio::test]
async fn a_spent_budget_keeps_samples_unscored_and_counts_them() {
    let f = Fixture::new("budget").await;
    let (sampler, scorer) = Sampler::new(vec![plan(1.0, 0.0015)], 64, 7);
    for i in 0..3 {
        sampler.offer(exchange(i, "parcel"));
    }
    let judge: Arc<dyn Subject> = Arc::new(Judge::default());
    let running = tokio::spawn(scorer.run(f.store.clone(), judge, Arc::new(SystemClock::new())));
    for _ in 0..500 {
        if f.samples().await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counts = sampler.stats()[0].1.clone();
    drop(sampler);
    running.await.unwrap();
    assert_eq!(
        (counts.sampled, counts.scored, counts.skipped_budget),
        (3, 2, 1)
    );
    assert!((counts.judge_cost_usd - 0.002).abs() < 1e-12);
    let statuses: Vec<SampleStatus> = f.samples().await.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            SampleStatus::SkippedBudget,
            SampleStatus::Scored,
            SampleStatus::Scored
        ]
    );
}

#[tokio::test]
async fn a_full_queue_drops_samples_and_counts_them() {
    let (sampler, _scorer) = Sampler::new(vec![plan(1.0, 1.0)], 2, 7);
    for i in 0..5 {
        sampler.offer(exchange(i, "parcel"));
    }
    let counts = &sampler.stats()[0].1;
    assert_eq!((counts.sampled, counts.dropped), (5, 3));
}

#[test]
fn the_share_of_answers_sampled_is_the_share_configured() {
    let (sampler, _scorer) = Sampler::new(vec![plan(0.25, 1.0)], 2, 7);
    let sampled = (0..10_000).filter(|_| sampler.wants("support")).count();
    assert!((2_300..=2_700).contains(&sampled), "{sampled} of 10000");
    assert!(!sampler.wants("another-route"));
    let (never, _scorer) = Sampler::new(vec![plan(0.0, 1.0)], 2, 7);
    assert!(!(0..1000).any(|_| never.wants("support")));
}

#[tokio::test]
async fn a_promoted_sample_becomes_a_labeled_case_only_when_the_suite_accepts_it() {
    let f = Fixture::new("promote").await;
    std::fs::write(f.dir.join("support.toml"), SUITE).unwrap();
    std::fs::write(f.dir.join("support.jsonl"), CASE).unwrap();
    score_all(&f, plan(1.0, 1.0), &["Your parcel left today."]).await;
    let sample = f.samples().await.remove(0);

    let case = sampling::promoted_case(
        (sample.id, &sample.input, &sample.answer),
        Some(json!("It left today.")),
        None,
    );
    let path = f.dir.join("support.toml");
    let id = sampling::promote(&path, &case).unwrap();
    assert_eq!(id, format!("sample-{}", sample.id));
    let suite = Suite::load(&path).unwrap();
    let added = suite.cases.iter().find(|c| c.id == id).unwrap();
    assert_eq!(added.tags, vec!["labeled".to_owned()]);
    assert_eq!(added.expected, Some(json!("It left today.")));

    // The same sample again would repeat its id: refused, the dataset unchanged.
    let before = std::fs::read_to_string(f.dir.join("support.jsonl")).unwrap();
    let err = sampling::promote(&path, &case).unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
    assert_eq!(
        std::fs::read_to_string(f.dir.join("support.jsonl")).unwrap(),
        before
    );
}

/// The nice value of this process's thread named `name`, read from `/proc`.
#[cfg(target_os = "linux")]
fn nice_of_thread(name: &str) -> Option<i64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command's closing parenthesis: state is field 3, nice 19.
        let rest = &stat[stat.rfind(')')? + 2..];
        return rest.split(' ').nth(16)?.parse().ok();
    }
    None
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scorer_runs_on_its_own_thread_at_the_lowest_priority_and_keeps_samples() {
    let f = Fixture::new("background").await;
    let (sampler, scorer) = Sampler::new(vec![plan(1.0, 1.0)], 64, 7);
    let judge: Arc<dyn Subject> = Arc::new(Judge::default());
    let thread = scorer
        .spawn_background(f.store.clone(), judge, Arc::new(SystemClock::new()))
        .unwrap();
    sampler.offer(exchange(0, "Your parcel left today."));
    let mut nice = None;
    for _ in 0..500 {
        nice = nice_of_thread("holdfast-scorer");
        if nice.is_some() && !f.samples().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nice, Some(19), "the scorer's thread is niced");
    let kept = f.samples().await;
    assert_eq!(kept.len(), 1, "scored and kept from its own thread");
    assert_eq!(kept[0].status, SampleStatus::Scored);
    drop(sampler);
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}
