//! Where a task's time goes: the client's own send and receive times joined with the
//! timestamps the system records for every task (`GET /task/{id}`), split into phases.
//! Client, gateway, dispatcher and executors share one host, hence one clock.

use faas::api::TimelineResponse;
use faas::client::Client;
use faas::task::TaskId;

/// A completed task whose timeline is fetched after the run (wall clock, µs since the epoch).
#[derive(Debug, Clone)]
pub struct Sample {
    pub task_id: TaskId,
    /// The client sent the submission.
    pub sent_us: u64,
    /// The client saw the final result.
    pub seen_us: u64,
}

/// The phases, in order; they add up to the client's round trip.
pub const PHASES: [&str; 5] = ["submit", "queue", "dispatch", "run", "result"];

/// Mean and median of each phase over the samples, µs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakdown {
    pub samples: usize,
    pub mean_us: [f64; 5],
    pub p50_us: [f64; 5],
}

/// One sample's phases, from the client's times and the task's recorded timeline:
/// - submit: client send → task stored and queued (HTTP, payload check, one Lua call);
/// - queue: → dispatcher took it (stream read, start script);
/// - dispatch: → its executor started it (transport to the worker and the executor pipe);
/// - run: → the executor finished (unpickling, the call, pickling the result);
/// - result: → the client saw it (back to the dispatcher, the finish script, the completion
///   notification, the gateway's read and the HTTP answer).
fn phases(sample: &Sample, timeline: &TimelineResponse) -> Option<[f64; 5]> {
    let times = [
        sample.sent_us,
        timeline.submitted_at?,
        timeline.dispatched_at?,
        timeline.started_at?,
        timeline.finished_at?,
        sample.seen_us,
    ];
    let mut out = [0.0; 5];
    for (i, phase) in out.iter_mut().enumerate() {
        *phase = times[i + 1] as f64 - times[i] as f64;
    }
    Some(out)
}

/// Fetches the timelines of `samples` (a few at a time) and summarizes their phases.
pub async fn measure(client: &Client, samples: &[Sample]) -> Breakdown {
    const CONCURRENT: usize = 16;
    let mut rows: Vec<[f64; 5]> = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(CONCURRENT) {
        let mut fetches = tokio::task::JoinSet::new();
        for sample in chunk {
            let (client, sample) = (client.clone(), sample.clone());
            fetches.spawn(async move {
                let timeline = client.timeline(sample.task_id).await.ok()?;
                phases(&sample, &timeline)
            });
        }
        while let Some(row) = fetches.join_next().await {
            if let Ok(Some(row)) = row {
                rows.push(row);
            }
        }
    }
    summarize(&rows)
}

fn summarize(rows: &[[f64; 5]]) -> Breakdown {
    let mut breakdown = Breakdown {
        samples: rows.len(),
        ..Breakdown::default()
    };
    if rows.is_empty() {
        return breakdown;
    }
    for phase in 0..PHASES.len() {
        let mut values: Vec<f64> = rows.iter().map(|r| r[phase]).collect();
        values.sort_by(f64::total_cmp);
        breakdown.mean_us[phase] = values.iter().sum::<f64>() / values.len() as f64;
        breakdown.p50_us[phase] = values[values.len() / 2];
    }
    breakdown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(at: [Option<u64>; 4]) -> TimelineResponse {
        TimelineResponse {
            task_id: TaskId::new_random(),
            status: faas::task::TaskStatus::Completed,
            function_id: None,
            attempts: 1,
            dispatcher: None,
            executor: None,
            submitted_at: at[0],
            dispatched_at: at[1],
            started_at: at[2],
            finished_at: at[3],
            cancelled_at: None,
        }
    }

    #[test]
    fn phases_split_the_round_trip() {
        let sample = Sample {
            task_id: TaskId::new_random(),
            sent_us: 1_000,
            seen_us: 2_000,
        };
        let recorded = timeline([Some(1_100), Some(1_250), Some(1_400), Some(1_700)]);
        let p = phases(&sample, &recorded).unwrap();
        assert_eq!(p, [100.0, 150.0, 150.0, 300.0, 300.0]);
        assert!((p.iter().sum::<f64>() - 1_000.0).abs() < f64::EPSILON);
        assert!(phases(&sample, &timeline([Some(1), None, None, None])).is_none());
    }

    #[test]
    fn summary_gives_mean_and_median() {
        let b = summarize(&[[1.0; 5], [2.0; 5], [9.0; 5]]);
        assert_eq!(b.samples, 3);
        assert!((b.mean_us[0] - 4.0).abs() < 1e-9);
        assert!((b.p50_us[4] - 2.0).abs() < 1e-9);
        assert_eq!(summarize(&[]).samples, 0);
    }
}
