//! The load: closed loop (N connections, each sends its next request when
//! the last is answered) and open loop (requests leave on a fixed schedule).

use super::*;

pub(crate) async fn closed_loop(target: Arc<Target>, cfg: &Config, meters: &Meters) -> Result<Run> {
    let t0 = Instant::now();
    let measure_start = t0 + cfg.warmup;
    let end = measure_start + cfg.duration;
    let mut workers = JoinSet::new();
    for w in 0..cfg.connections {
        let target = target.clone();
        workers.spawn(closed_worker(target, w as u64, measure_start, end));
    }
    tokio::time::sleep_until(measure_start.into()).await;
    let cpu_start = meters.sample();
    tokio::time::sleep_until(end.into()).await;
    let cpu = meters.sample().since(&cpu_start);
    let mut stats = Stats::new()?;
    while let Some(worker) = workers.join_next().await {
        stats.merge(worker??)?;
    }
    Ok(Run {
        target: target.name,
        round: 0,
        stats,
        measured: cfg.duration,
        cpu,
    })
}

pub(crate) async fn closed_worker(
    target: Arc<Target>,
    worker: u64,
    measure_start: Instant,
    end: Instant,
) -> Result<Stats> {
    let mut stats = Stats::new()?;
    let mut conn: Option<Conn> = None;
    // Ids are unique across workers within a run.
    let mut id = worker << 40;
    loop {
        if Instant::now() >= end {
            break;
        }
        if conn.as_ref().is_none_or(Conn::is_closed) {
            conn = None;
            stats.connects += 1;
            match connect(target.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    stats.error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(sender) = conn.as_mut() else {
            continue;
        };
        id += 1;
        let start = Instant::now();
        let outcome = send_one(sender, &target, id).await;
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                if start >= measure_start && done <= end {
                    stats.ok(done - start);
                }
            }
            Err(e) => {
                if e.broken {
                    conn = None;
                }
                stats.error(e);
            }
        }
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------
// open loop: requests leave on a fixed schedule whether or not earlier ones are done

/// Length of one open-loop slice: the targets take turns slice by slice, so
/// background load on the machine falls on all of them alike.
pub(crate) const SLICE: Duration = Duration::from_secs(1);

pub(crate) struct OpenLoopState {
    pub(crate) target: Arc<Target>,
    pub(crate) pool: Arc<Mutex<Vec<Conn>>>,
    pub(crate) stats: Arc<Mutex<Stats>>,
    pub(crate) measured: Duration,
    pub(crate) cpu: CpuUse,
    pub(crate) next_id: u64,
}

/// Open loop at `cfg.rate` for every target: a warm-up slice each, then
/// alternating slices until each has `cfg.latency_duration` measured.
pub(crate) async fn open_loop(
    targets: &[Arc<Target>],
    cfg: &Config,
    meters: &Meters,
) -> Result<Vec<Run>> {
    let mut states = Vec::new();
    for target in targets {
        let pool: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(Mutex::new(Stats::new()?));
        for _ in 0..OPEN_LOOP_POOL {
            let conn = connect(target.addr)
                .await
                .map_err(|e| anyhow!("{}: {}", e.kind, e.detail))?;
            lock(&pool).push(conn);
            lock(&stats).connects += 1;
        }
        states.push(OpenLoopState {
            target: target.clone(),
            pool,
            stats,
            measured: Duration::ZERO,
            cpu: CpuUse::default(),
            next_id: 1,
        });
    }
    if !cfg.warmup.is_zero() {
        for state in &mut states {
            open_slice(state, cfg.rate, cfg.warmup, None).await?;
        }
    }
    let mut left = cfg.latency_duration;
    while !left.is_zero() {
        let len = left.min(SLICE);
        for state in &mut states {
            open_slice(state, cfg.rate, len, Some(meters)).await?;
        }
        left -= len;
    }
    let mut runs = Vec::new();
    for state in states {
        drop(state.pool);
        let stats = Arc::try_unwrap(state.stats)
            .map_err(|_| anyhow!("open loop: request tasks still hold the stats"))?
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        runs.push(Run {
            target: state.target.name,
            round: 0,
            stats,
            measured: state.measured,
            cpu: state.cpu,
        });
    }
    Ok(runs)
}

/// One slice of `len` at `rate` req/s; measured when `meters` is given.
pub(crate) async fn open_slice(
    state: &mut OpenLoopState,
    rate: u64,
    len: Duration,
    meters: Option<&Meters>,
) -> Result<()> {
    let rate = rate as f64;
    let total = (len.as_secs_f64() * rate).round() as u64;
    let record = meters.is_some();
    let cpu_start = meters.map(Meters::sample);
    let t0 = Instant::now();
    let mut in_flight = JoinSet::new();
    for i in 0..total {
        let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        // Latency runs from the moment the request is dispatched: it includes
        // waiting for a free connection, not the timer's own lateness.
        let dispatched = Instant::now();
        in_flight.spawn(open_request(
            state.target.clone(),
            state.pool.clone(),
            state.stats.clone(),
            state.next_id,
            dispatched,
            record,
        ));
        state.next_id += 1;
        while let Some(done) = in_flight.try_join_next() {
            done?;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done?;
    }
    if let (Some(meters), Some(start)) = (meters, cpu_start) {
        state.cpu = state.cpu.plus(&meters.sample().since(&start));
        state.measured += len;
    }
    Ok(())
}

pub(crate) async fn open_request(
    target: Arc<Target>,
    pool: Arc<Mutex<Vec<Conn>>>,
    stats: Arc<Mutex<Stats>>,
    id: u64,
    dispatched: Instant,
    record: bool,
) {
    let pooled = {
        let mut pool = lock(&pool);
        loop {
            match pool.pop() {
                Some(c) if c.is_closed() => continue,
                other => break other,
            }
        }
    };
    let mut conn = match pooled {
        Some(c) => c,
        None => {
            lock(&stats).connects += 1;
            match connect(target.addr).await {
                Ok(c) => c,
                Err(e) => {
                    lock(&stats).error(e);
                    return;
                }
            }
        }
    };
    let outcome = send_one(&mut conn, &target, id).await;
    let latency = dispatched.elapsed();
    let reusable = match &outcome {
        Ok(()) => true,
        Err(e) => !e.broken,
    };
    if reusable {
        lock(&pool).push(conn);
    }
    let mut stats = lock(&stats);
    match outcome {
        Ok(()) if record => stats.ok(latency),
        Ok(()) => {}
        Err(e) => stats.error(e),
    }
}
