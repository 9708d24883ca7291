//! Each job's schedule loop — one task per job and configuration generation,
//! cancelled on reload and shutdown — and the ticks of a fleet, which count
//! from the Unix epoch so every instance agrees on them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::config::JobConfig;

pub(super) fn start_generation(shared: &Arc<Shared>, cancel: CancellationToken, first: bool) {
    for job in &shared.config().jobs {
        tokio::spawn(schedule_loop(
            Arc::clone(shared),
            Arc::new(job.clone()),
            cancel.clone(),
            first,
        ));
    }
}

async fn schedule_loop(
    shared: Arc<Shared>,
    job: Arc<JobConfig>,
    cancel: CancellationToken,
    first: bool,
) {
    let clock = Arc::clone(&shared.clock);
    // A fleet's instances must agree on ticks: `every` counts from the unix
    // epoch instead of from the start.
    let aligned = shared.fleet().is_some();
    let next_after = |t: time::OffsetDateTime| next_tick(&job.schedule, t, aligned);
    let mut next = if job.run_at_start && first {
        let now = clock.now();
        if aligned {
            current_slot(&job.schedule, now)
        } else {
            now
        }
    } else {
        match next_after(clock.now()) {
            Some(n) => n,
            None => return,
        }
    };
    loop {
        let now = clock.now();
        if next > now {
            let wait = (next - now).unsigned_abs();
            tokio::select! {
                _ = clock.sleep(wait) => continue,
                _ = cancel.cancelled() => return,
            }
        }
        if cancel.is_cancelled() {
            return;
        }
        shared.tick(Arc::clone(&job), next);
        let Some(mut n) = next_after(next) else {
            return;
        };
        let now = clock.now();
        if n <= now {
            match next_after(now) {
                Some(m) => n = m,
                None => return,
            }
        }
        next = n;
    }
}

/// The first tick after `after`; `aligned`: `every` ticks are multiples of
/// the interval since the unix epoch (the same on every instance).
pub(crate) fn next_tick(
    schedule: &crate::Schedule,
    after: time::OffsetDateTime,
    aligned: bool,
) -> Option<time::OffsetDateTime> {
    match schedule {
        crate::Schedule::Every(d) if aligned => {
            let step = d.as_millis().max(1) as i128;
            let ms = after.unix_timestamp_nanos() / 1_000_000;
            let next = (ms.div_euclid(step) + 1) * step;
            time::OffsetDateTime::from_unix_timestamp_nanos(next * 1_000_000).ok()
        }
        s => s.next_after(after),
    }
}

/// The aligned tick at or before `now` (a fleet's `run_at_start`).
fn current_slot(schedule: &crate::Schedule, now: time::OffsetDateTime) -> time::OffsetDateTime {
    match schedule {
        crate::Schedule::Every(d) => {
            let step = d.as_millis().max(1) as i128;
            let ms = now.unix_timestamp_nanos() / 1_000_000;
            time::OffsetDateTime::from_unix_timestamp_nanos(ms.div_euclid(step) * step * 1_000_000)
                .unwrap_or(now)
        }
        _ => now.replace_nanosecond(0).unwrap_or(now),
    }
}
