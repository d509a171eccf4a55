//! `ecu-bridge watch`: a live terminal view of a running bridge, for an engineer logged into the
//! trackside PC. It reads the bridge's `/values` ([`ValuesReport`]) from its metrics endpoint
//! four times a second and draws every parameter's latest value, unit and rate under the
//! pipeline's counters.
//!
//! It only reads: the bridge neither knows nor cares that it is watched, and a bridge that is
//! not (yet) reachable is shown as such and asked again, so the view survives restarts.

use std::io::{self, IsTerminal};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::HOST;
use hyper_util::rt::TokioIo;
use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::live_values::{ParameterValue, ValuesReport};

/// How often the view asks the bridge for its values.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long one request may take before the bridge counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the view could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Standard output is not a terminal (a pipe or a file).
    #[error(
        "watch draws on a terminal, and standard output is not one (use `curl http://ENDPOINT/values` for the JSON)"
    )]
    NotATerminal,
    /// The terminal could not be set up, drawn on or read.
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
}

/// Why one `/values` request failed; shown in the view's status line.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing answered at the address.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The address asked.
        endpoint: String,
        /// Why.
        source: io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built from the endpoint.
    #[error("bad endpoint: {0}")]
    Request(#[from] hyper::http::Error),
    /// The endpoint answered, but not with values (an older bridge, or another service).
    #[error("/values answered {0} (is this an ecu-bridge metrics endpoint?)")]
    Status(u16),
    /// The body was not a values report.
    #[error("/values is not a values report: {0}")]
    Json(#[from] serde_json::Error),
    /// No answer in time.
    #[error("no answer within {REQUEST_TIMEOUT:?}")]
    Timeout,
}

/// What the view shows: the last report, and what went wrong since, if anything.
#[derive(Debug, Default)]
pub struct View {
    /// The `host:port` watched.
    pub endpoint: String,
    /// The latest report received.
    pub report: Option<ValuesReport>,
    /// The latest request's failure (cleared by the next success).
    pub problem: Option<String>,
    /// First table row shown (scrolling).
    pub scroll: usize,
}

/// Runs the view on the terminal until the user quits (`q`, Esc or Ctrl-C) or SIGTERM.
pub async fn run(endpoint: &str) -> Result<(), WatchError> {
    if !io::stdout().is_terminal() {
        return Err(WatchError::NotATerminal);
    }
    let mut view = View {
        endpoint: host_and_port(endpoint).to_owned(),
        ..View::default()
    };
    let keys = spawn_key_reader();
    let mut terminal = ratatui::try_init()?;
    let outcome = poll_and_draw(&mut terminal, &mut view, keys).await;
    ratatui::restore();
    outcome
}

/// Asks the bridge at `endpoint` (`host:port`, `http://` optional) for its values once.
pub async fn fetch(endpoint: &str) -> Result<ValuesReport, FetchError> {
    let endpoint = host_and_port(endpoint);
    tokio::time::timeout(REQUEST_TIMEOUT, fetch_unbounded(endpoint))
        .await
        .map_err(|_| FetchError::Timeout)?
}

/// Draws `view` into `frame`: title, counters, status, then the parameter table.
pub fn draw(frame: &mut Frame<'_>, view: &View) {
    let [title, counters, status, table, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let session = view
        .report
        .as_ref()
        .map(|r| r.counters.session.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("not open yet");
    let heading = format!("ecu-bridge watch  {}  session {session}", view.endpoint);
    frame.render_widget(
        Paragraph::new(heading).style(Style::new().add_modifier(Modifier::BOLD)),
        title,
    );
    frame.render_widget(
        Paragraph::new(counters_line(view.report.as_ref())),
        counters,
    );
    frame.render_widget(Paragraph::new(status_line(view)), status);
    let rows = view
        .report
        .as_ref()
        .map(|report| table_rows(&report.parameters))
        .unwrap_or_default();
    let header = Row::new(["parameter", "value", "unit", "rate /s", "samples"])
        .style(Style::new().add_modifier(Modifier::UNDERLINED));
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(18),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    let shown = rows.into_iter().skip(view.scroll);
    frame.render_widget(Table::new(shown, widths).header(header), table);
    frame.render_widget(
        Paragraph::new("q quit   up/down/PgUp/PgDn/Home scroll"),
        help,
    );
}

async fn poll_and_draw(
    terminal: &mut ratatui::DefaultTerminal,
    view: &mut View,
    mut keys: mpsc::UnboundedReceiver<io::Result<Event>>,
) -> Result<(), WatchError> {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // SIGTERM (or SIGINT from outside the terminal) must not leave it in raw mode.
    let stopped = crate::service::signals::shutdown_signal();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return Ok(()),
            _ = ticks.tick() => match fetch(&view.endpoint).await {
                Ok(report) => {
                    view.report = Some(report);
                    view.problem = None;
                }
                Err(error) => view.problem = Some(error.to_string()),
            },
            key = keys.recv() => match key {
                Some(Ok(Event::Key(key))) => {
                    if !handle_key(view, key) {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
        }
        terminal.draw(|frame| draw(frame, view))?;
    }
}

/// Applies a key press; `false` when it asks to quit.
fn handle_key(view: &mut View, key: KeyEvent) -> bool {
    if key.kind == KeyEventKind::Release {
        return true;
    }
    let page = 10;
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return false,
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return false,
        KeyCode::Down | KeyCode::Char('j') => view.scroll += 1,
        KeyCode::Up | KeyCode::Char('k') => view.scroll = view.scroll.saturating_sub(1),
        KeyCode::PageDown => view.scroll += page,
        KeyCode::PageUp => view.scroll = view.scroll.saturating_sub(page),
        KeyCode::Home => view.scroll = 0,
        _ => {}
    }
    let last = view.report.as_ref().map_or(0, |r| r.parameters.len());
    view.scroll = view.scroll.min(last.saturating_sub(1));
    true
}

/// Reads terminal events on a thread of its own (crossterm's reads block).
fn spawn_key_reader() -> mpsc::UnboundedReceiver<io::Result<Event>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            let event = event::read();
            let failed = event.is_err();
            if sender.send(event).is_err() || failed {
                break;
            }
        }
    });
    receiver
}

async fn fetch_unbounded(endpoint: &str) -> Result<ValuesReport, FetchError> {
    let stream = TcpStream::connect(endpoint)
        .await
        .map_err(|source| FetchError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let exchange = async {
        let request = Request::get("/values")
            .header(HOST, endpoint)
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = response.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    };
    // The connection must be driven while the request is exchanged; the server closes it after.
    let (report, _closed) = tokio::join!(exchange, connection);
    report
}

/// `http://host:port/` → `host:port`.
fn host_and_port(endpoint: &str) -> &str {
    let endpoint = endpoint.trim();
    let endpoint = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    endpoint.trim_end_matches('/')
}

fn counters_line(report: Option<&ValuesReport>) -> String {
    let Some(report) = report else {
        return String::new();
    };
    let c = &report.counters;
    format!(
        "frames in {}  unknown ids {}  rejected {}  samples decoded {}  published {}  waiting {}  dropped {} (kernel {})",
        c.frames_in,
        c.unknown_ids,
        c.rejected_inputs,
        c.samples_decoded,
        c.samples_published,
        c.samples_waiting,
        c.frames_dropped,
        c.kernel_drops,
    )
}

fn status_line(view: &View) -> Line<'static> {
    if let Some(problem) = &view.problem {
        let text = format!("{problem} (asking again)");
        return Line::styled(text, Style::new().add_modifier(Modifier::REVERSED));
    }
    match &view.report {
        None => Line::from("waiting for the first answer"),
        Some(report) => {
            let seen = report
                .parameters
                .iter()
                .filter(|p| p.value.is_some())
                .count();
            Line::from(format!(
                "{seen} of {} parameters seen (the rest below, without values)",
                report.parameters.len()
            ))
        }
    }
}

/// Parameters with a value first, then the others, each group in channel-map order.
fn table_rows(parameters: &[ParameterValue]) -> Vec<Row<'static>> {
    let (seen, unseen): (Vec<_>, Vec<_>) = parameters.iter().partition(|p| p.value.is_some());
    seen.into_iter()
        .chain(unseen)
        .map(|p| {
            let rate = if p.value.is_some() {
                format!("{:.1}", p.rate_hz)
            } else {
                String::new()
            };
            Row::new([
                Cell::from(p.identifier.clone()),
                Cell::from(format_value(p)),
                Cell::from(p.unit.clone()),
                Cell::from(rate),
                Cell::from(p.samples.to_string()),
            ])
        })
        .collect()
}

fn format_value(parameter: &ParameterValue) -> String {
    match (parameter.value, &parameter.text) {
        (None, _) => "-".to_owned(),
        (Some(value), Some(text)) => format!("{value} {text}"),
        (Some(value), None) => format!("{value:.*}", usize::from(parameter.decimals)),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::live_values::PipelineCounters;

    fn parameter(identifier: &str, value: Option<f64>, decimals: u8) -> ParameterValue {
        ParameterValue {
            identifier: identifier.into(),
            unit: "rpm".into(),
            decimals,
            value,
            text: None,
            time_ns: value.map(|_| 1),
            samples: u64::from(value.is_some()) * 40,
            rate_hz: if value.is_some() { 20.0 } else { 0.0 },
        }
    }

    fn screen(view: &View) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 12)).expect("terminal");
        terminal.draw(|frame| draw(frame, view)).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    fn report() -> ValuesReport {
        ValuesReport {
            parameters: vec![
                parameter("Unseen:Car", None, 0),
                parameter("EngineSpeed:Car", Some(3512.0), 0),
                parameter("Lambda1:Car", Some(0.987), 3),
            ],
            counters: PipelineCounters {
                frames_in: 120,
                unknown_ids: 0,
                rejected_inputs: 0,
                samples_decoded: 480,
                samples_published: 470,
                samples_waiting: 10,
                frames_dropped: 0,
                kernel_drops: 0,
                session: "abc".into(),
            },
        }
    }

    #[test]
    fn the_table_shows_values_with_their_decimals_seen_ones_first() {
        let view = View {
            endpoint: "127.0.0.1:9464".into(),
            report: Some(report()),
            ..View::default()
        };
        let text = screen(&view);
        assert!(text.contains("session abc"), "{text}");
        assert!(text.contains("frames in 120"), "{text}");
        assert!(text.contains("published 470  waiting 10"), "{text}");
        assert!(text.contains("2 of 3 parameters seen"), "{text}");
        let engine = text.find("EngineSpeed:Car").expect("engine row");
        let unseen = text.find("Unseen:Car").expect("unseen row");
        assert!(engine < unseen, "seen first:\n{text}");
        assert!(text.contains("3512"), "{text}");
        assert!(text.contains("0.987"), "{text}");
        assert!(text.contains("20.0"), "{text}");
    }

    #[test]
    fn a_failed_request_is_shown_and_the_last_values_stay() {
        let view = View {
            endpoint: "127.0.0.1:9".into(),
            report: Some(report()),
            problem: Some("cannot connect to 127.0.0.1:9: Connection refused".into()),
            scroll: 0,
        };
        let text = screen(&view);
        assert!(text.contains("cannot connect to 127.0.0.1:9"), "{text}");
        assert!(text.contains("3512"), "{text}");
    }

    #[test]
    fn keys_scroll_within_the_table_and_quit() {
        let mut view = View {
            report: Some(report()),
            ..View::default()
        };
        let press = |code| KeyEvent::new(code, KeyModifiers::NONE);
        assert!(handle_key(&mut view, press(KeyCode::PageDown)));
        assert_eq!(view.scroll, 2, "clamped to the last row");
        assert!(handle_key(&mut view, press(KeyCode::Up)));
        assert_eq!(view.scroll, 1);
        assert!(handle_key(&mut view, press(KeyCode::Home)));
        assert_eq!(view.scroll, 0);
        assert!(!handle_key(&mut view, press(KeyCode::Char('q'))));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(!handle_key(&mut view, ctrl_c));
    }

    #[tokio::test]
    async fn an_endpoint_that_is_not_a_bridge_is_named_as_such() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let answering = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let answer =
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            tokio::io::AsyncWriteExt::write_all(&mut stream, answer)
                .await
                .expect("answer");
        });
        let error = fetch(&address.to_string()).await.expect_err("404");
        assert!(matches!(error, FetchError::Status(404)), "{error}");
        assert!(
            error.to_string().contains("ecu-bridge metrics endpoint"),
            "{error}"
        );
        answering.await.expect("server task");
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        // Accepts (the kernel does, from the backlog) and never answers.
        let started = tokio::time::Instant::now();
        let error = fetch(&address.to_string()).await.expect_err("stalled");
        assert!(matches!(error, FetchError::Timeout), "{error}");
        assert_eq!(started.elapsed(), REQUEST_TIMEOUT);
        drop(listener);
    }

    #[tokio::test]
    async fn fetching_from_where_nothing_listens_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let error = fetch(&format!("http://{address}/"))
            .await
            .expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot connect to {address}")),
            "{error}"
        );
    }
}
