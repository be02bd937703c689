//! `overlayctl -b FILE`: one command per line, as `ip -batch` reads them,
//! run over one connection.
//!
//! Every line is parsed first: a line that does not parse is reported with
//! its number and, without `--force`, nothing is sent at all. Then the
//! commands run in order. Requests whose answer is only an ack (activate,
//! delete, the writes of prop-set and the cache commands, and creates
//! when no JSON is asked for) are pipelined: sent without waiting, up to
//! [`WINDOW`] in flight, their acks collected as they come; any other
//! request first waits for those in flight, so a command that reads sees
//! every change made by the lines before it (the plugin list, which
//! creates with `-p` read, is asked once per batch: the daemon loads
//! plugins only at start). The first error stops the batch: nothing is
//! sent once it is known, but pipelined lines sent before its answer came
//! (at most [`WINDOW`], never past a reading line) have run, and their
//! errors are reported too. A request not answered within the client's
//! timeout fails its line and the lines in flight behind it; answers that
//! come later are dropped, never taken for a later line's. `--force` runs
//! every line; either way the exit status is non-zero when a line failed.
//! Every error names its line.
//!
//! Lines are split into words as a shell would split simple words: blanks
//! separate them, single or double quotes group, a backslash takes the
//! next character as it is, `#` at the start of a word comments out the
//! rest of the line, and a backslash at the end of a line joins the next
//! one. Empty lines are skipped. `--socket`, `--record` and `-b` belong to
//! the command line, not to a batch line.

use crate::cli::{Cli, Command};
use crate::commands::{execute, Daemon};
use crate::error::Error;
use clap::{CommandFactory, FromArgMatches};
use nlproto::client::{Client, Error as ClientError};
use nlproto::spec::overlay as ov;
use nlproto::Attr;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;

/// Most requests in flight at once.
pub const WINDOW: usize = 64;

/// The error a line gets when an earlier line failed while it waited to
/// send: it was not run, and is not reported as failed itself.
const NOT_RUN: &str = "not run: an earlier line failed";

/// One line of the batch, parsed.
#[derive(Debug)]
pub struct Line {
    /// Its number in the file (the first of its lines when continued).
    pub number: usize,
    /// Its text, for messages.
    pub text: String,
    /// The command, or why the line does not parse.
    pub parsed: Result<Cli, String>,
}

/// Splits a line into words; `Err` for an unterminated quote.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => word.push(n),
                    None => return Err("a backslash ends the line".into()),
                }
            }
            '\'' | '"' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        Some(n) if n == quote => break,
                        Some('\\') if quote == '"' => match chars.next() {
                            Some(n) => word.push(n),
                            None => return Err(format!("unterminated {quote} quote")),
                        },
                        Some(n) => word.push(n),
                        None => return Err(format!("unterminated {quote} quote")),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The options that belong to the whole batch.
const WHOLE_BATCH: &[&str] = &["--socket", "--record", "-b", "--batch", "--force"];

/// Parses the batch text into its lines (empty and comment lines left
/// out).
pub fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (number, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        // A backslash at the end (not itself escaped) continues the line.
        let trailing = raw.len() - raw.trim_end_matches('\\').len();
        if trailing % 2 == 1 {
            joined.push_str(&raw[..raw.len() - 1]);
            joined.push(' ');
            pending = Some((number, joined));
            continue;
        }
        joined.push_str(raw);
        if let Some(line) = parse_line(number, &joined) {
            lines.push(line);
        }
    }
    if let Some((number, joined)) = pending {
        if let Some(line) = parse_line(number, &joined) {
            lines.push(line);
        }
    }
    lines
}

fn parse_line(number: usize, text: &str) -> Option<Line> {
    let words = match split_words(text) {
        Ok(w) if w.is_empty() => return None,
        Ok(w) => w,
        Err(e) => {
            return Some(Line {
                number,
                text: text.trim().to_string(),
                parsed: Err(e),
            })
        }
    };
    let parsed = if let Some(w) = words.iter().find(|w| {
        WHOLE_BATCH
            .iter()
            .any(|o| w == o || w.starts_with(&format!("{o}=")))
    }) {
        Err(format!(
            "{w} applies to the whole batch: give it on overlayctl's command line"
        ))
    } else {
        match parse_words(words) {
            Ok(cli) => match &cli.command {
                None => Err("no command on the line".into()),
                Some(Command::Monitor) => {
                    Err("monitor runs until interrupted: it cannot be part of a batch".into())
                }
                Some(Command::Raw(_)) => {
                    Err("raw is not available in a batch: run it on its own".into())
                }
                Some(Command::Show {
                    interval: Some(_), ..
                }) => Err("show -i runs until interrupted: it cannot be part of a batch".into()),
                Some(_) => Ok(cli),
            },
            // clap's message without its usage lines.
            Err(e) => Err(e
                .to_string()
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("cannot parse the line")
                .trim_start_matches("error: ")
                .to_string()),
        }
    };
    Some(Line {
        number,
        text: text.trim().to_string(),
        parsed,
    })
}

/// Parses one line's words as overlayctl's command line would be.
///
/// Building clap's description of the command line costs far more than
/// matching one line against it (tens of microseconds, most of a line's
/// parse), so each thread builds it once and matches every line against
/// that.
fn parse_words(words: Vec<String>) -> Result<Cli, clap::Error> {
    thread_local! {
        static COMMAND: RefCell<clap::Command> = RefCell::new(Cli::command());
    }
    COMMAND.with_borrow_mut(|command| {
        let mut matches = command
            .try_get_matches_from_mut(std::iter::once("overlayctl".to_string()).chain(words))?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(command))
    })
}

/// A [`Daemon`] over one connection that pipelines the requests whose
/// answer is an ack.
pub struct Pipeline<'a> {
    client: &'a mut Client,
    /// The requests in flight: sequence number and the line that sent
    /// them.
    inflight: VecDeque<(u32, usize)>,
    /// The line running now, and its text.
    line: (usize, String),
    /// The texts of the lines with requests in flight.
    texts: std::collections::HashMap<usize, String>,
    /// Errors of pipelined requests, by line, in the order they came.
    pub failed: Vec<(usize, Error)>,
    /// Whether an error stops the batch (no --force): then nothing more
    /// is sent once one is known.
    stop_on_error: bool,
    /// An error is known (reported or to be reported).
    errored: bool,
    /// The PLUGINS dump, asked once: the daemon loads its plugins at start
    /// only, and every create with -p needs it, so that creates stay
    /// pipelined.
    plugins: Option<Vec<Vec<Attr>>>,
}

impl<'a> Pipeline<'a> {
    /// A pipeline over `client`.
    pub fn new(client: &'a mut Client) -> Pipeline<'a> {
        Pipeline {
            client,
            inflight: VecDeque::new(),
            line: (0, String::new()),
            texts: Default::default(),
            failed: Vec::new(),
            stop_on_error: false,
            errored: false,
            plugins: None,
        }
    }

    /// Refuses to send anything more once an error is known, unless
    /// --force.
    fn may_send(&self) -> Result<(), ClientError> {
        if self.stop_on_error && self.errored {
            Err(ClientError::Protocol(NOT_RUN.into()))
        } else {
            Ok(())
        }
    }

    fn set_line(&mut self, number: usize, text: &str) {
        self.line = (number, text.to_string());
    }

    /// Waits for the oldest request in flight. When the wait itself fails
    /// (no answer within the timeout, the connection lost), the client
    /// gives up every request in flight (the daemon answers in order, so
    /// none of them was answered): each of their lines fails with that
    /// error, and with `--force` the batch goes on over the same
    /// connection, where their answers, should they come late, are
    /// dropped.
    fn finish_one(&mut self) {
        let Some(&(seq, line)) = self.inflight.front() else {
            return;
        };
        match self.client.finish() {
            Ok((answered, outcome)) => {
                // The client takes the answers in the order it sent the requests.
                debug_assert_eq!(answered, seq);
                self.inflight.pop_front();
                if let Err(source) = outcome {
                    let what = self.texts.get(&line).cloned().unwrap_or_default();
                    self.failed.push((line, Error::Daemon { what, source }));
                    self.errored = true;
                }
                if !self.inflight.iter().any(|(_, l)| *l == line) {
                    self.texts.remove(&line);
                }
            }
            Err(e) => {
                let mut lines: Vec<usize> = self.inflight.drain(..).map(|(_, l)| l).collect();
                lines.dedup();
                for l in lines {
                    let what = self.texts.remove(&l).unwrap_or_default();
                    let source = given_up(&e);
                    self.failed.push((l, Error::Daemon { what, source }));
                }
                self.errored = true;
            }
        }
    }

    /// Waits for every request in flight.
    pub fn drain(&mut self) {
        while !self.inflight.is_empty() {
            self.finish_one();
        }
    }

    fn start(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        if self.inflight.len() >= WINDOW {
            self.finish_one();
        }
        self.may_send()?;
        let seq = self.client.start(family, cmd, attrs)?;
        let (line, text) = self.line.clone();
        self.texts.insert(line, text);
        self.inflight.push_back((seq, line));
        Ok(())
    }
}

impl Daemon for Pipeline<'_> {
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        self.drain();
        self.may_send()?;
        Ok(self.client.transact(family, cmd, attrs)?.attrs)
    }

    fn write(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.start(family, cmd, attrs)
    }

    fn request(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.start(family, cmd, attrs)
    }

    fn dump(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Vec<Attr>>, ClientError> {
        let plugins = family == ov::NAME && cmd == ov::CMD_PLUGINS && attrs.is_empty();
        if let (true, Some(p)) = (plugins, &self.plugins) {
            self.may_send()?;
            return Ok(p.clone());
        }
        self.drain();
        self.may_send()?;
        let answer: Vec<Vec<Attr>> = self
            .client
            .dump(family, cmd, attrs)?
            .into_iter()
            .map(|m| m.attrs)
            .collect();
        if plugins {
            self.plugins = Some(answer.clone());
        }
        Ok(answer)
    }
}

/// The error of a line whose request was in flight when waiting for an
/// answer failed with `e`.
fn given_up(e: &ClientError) -> ClientError {
    match e {
        ClientError::Timeout => ClientError::Timeout,
        ClientError::Io(io) => ClientError::Io(io.raw_os_error().map_or_else(
            || std::io::Error::new(io.kind(), io.to_string()),
            std::io::Error::from_raw_os_error,
        )),
        other => ClientError::Protocol(format!("no answer: {other}")),
    }
}

/// `line N: ...` for an error of line `number`.
fn line_error(number: usize, text: impl std::fmt::Display) -> String {
    format!("line {number}: {text}")
}

/// Runs the batch `text` against the daemon `client` is connected to.
/// Writes each command's output to `out` as it comes and each error to
/// `err`; returns how many lines failed (or could not be run).
pub fn run(
    client: &mut Client,
    text: &str,
    json: bool,
    force: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> usize {
    let lines = parse(text);
    let mut failures = 0;
    for l in &lines {
        if let Err(e) = &l.parsed {
            failures += 1;
            let _ = writeln!(
                err,
                "overlayctl: {}",
                line_error(l.number, format!("{e}: {}", l.text))
            );
        }
    }
    if failures > 0 && !force {
        let _ = writeln!(
            err,
            "overlayctl: nothing was sent: fix the line{} above, or run with --force to run the others",
            if failures == 1 { "" } else { "s" }
        );
        return failures;
    }
    let mut pipe = Pipeline::new(client);
    pipe.stop_on_error = !force;
    let mut stopped = false;
    for l in &lines {
        let Ok(cli) = &l.parsed else { continue };
        pipe.set_line(l.number, &l.text);
        // The line's own options, with -j also from the command line.
        let line_cli = Cli {
            json: cli.json || json,
            socket: cli.socket.clone(),
            record: None,
            batch: None,
            force: false,
            command: cli.command.clone(),
        };
        let result = execute(&line_cli, &mut pipe);
        match result {
            Ok(bytes) => {
                let _ = out.write_all(&bytes);
            }
            Err(Error::Daemon {
                source: ClientError::Protocol(p),
                ..
            }) if p == NOT_RUN => {}
            Err(e) => {
                failures += 1;
                pipe.errored = true;
                let _ = writeln!(err, "overlayctl: {}", line_error(l.number, &e));
            }
        }
        for (n, e) in pipe.failed.drain(..) {
            failures += 1;
            let _ = writeln!(err, "overlayctl: {}", line_error(n, &e));
        }
        if failures > 0 && !force {
            stopped = true;
            break;
        }
    }
    pipe.drain();
    for (n, e) in pipe.failed.drain(..) {
        failures += 1;
        let _ = writeln!(err, "overlayctl: {}", line_error(n, &e));
    }
    if stopped {
        let _ = writeln!(
            err,
            "overlayctl: stopped at the first error; --force runs every line"
        );
    }
    let _ = out.flush();
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlproto::server::{ctrl_reply, pack_datagrams, requests};
    use nlproto::spec::{ctrl, handle};
    use nlproto::{AttrsExt, Message};
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    #[test]
    fn words_as_a_shell_splits_them() {
        assert_eq!(
            split_words("  show -s  ov0 ").unwrap(),
            ["show", "-s", "ov0"]
        );
        assert_eq!(
            split_words(r#"prop-set ov0 "files/config=/a b/c" x='1 2' y\ z # note"#).unwrap(),
            ["prop-set", "ov0", "files/config=/a b/c", "x=1 2", "y z"]
        );
        assert_eq!(
            split_words("# only a comment").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(split_words("a#b").unwrap(), ["a#b"]);
        assert!(split_words("show \"ov0")
            .unwrap_err()
            .contains("unterminated"));
    }

    #[test]
    fn lines_are_numbered_and_bad_ones_say_why() {
        let text = "\
# devices
create -e vxlan -s direct -v 42 \\
    ov0
activate ov0

frobnicate ov0
activate --socket /x ov0
monitor
show -s -i 1
show
";
        let lines = parse(text);
        let numbers: Vec<usize> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [2, 4, 6, 7, 8, 9, 10]);
        assert!(lines[0].parsed.is_ok());
        assert_eq!(lines[0].text, "create -e vxlan -s direct -v 42      ov0");
        let errs: Vec<String> = lines
            .iter()
            .filter_map(|l| l.parsed.as_ref().err().cloned())
            .collect();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("frobnicate"), "{errs:?}");
        assert!(
            errs[1].starts_with("--socket applies to the whole batch"),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("monitor runs until interrupted"),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("show -i runs until interrupted"),
            "{errs:?}"
        );
        assert!(lines[6].parsed.is_ok());
    }

    /// A daemon over one end of a socket pair, driven by hand: it answers
    /// the connection's setup at once, then, from `activate slow` on, is
    /// stuck (answers nothing) until a request that is not an activate
    /// arrives; then it sends the answers it held back, late, and goes on
    /// answering at once. `activate missing` fails with ENOENT.
    fn stuck_daemon(sock: UnixDatagram) {
        const PID: u32 = 7;
        let mut held: Vec<Message> = Vec::new();
        let mut stuck = false;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = sock.recv(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            let mut out = Vec::new();
            for req in requests(&buf[..n]) {
                let req = req.unwrap();
                let name = req.attrs.get_str(ov::ATTR_NAME).unwrap_or("");
                let activate = req.family.id == ov::ID && req.command.id == ov::CMD_ACTIVATE;
                let answer: Vec<Message> = if req.family.id == ctrl::GENL_ID_CTRL {
                    ctrl_reply(&req, PID)
                } else if req.family.id == handle::ID {
                    req.respond(PID, vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, PID)]])
                } else if activate && name == "missing" {
                    vec![req
                        .fail(libc::ENOENT, "no device named missing")
                        .reply(PID)
                        .into()]
                } else if activate {
                    req.respond(PID, vec![])
                } else {
                    req.respond(PID, vec![vec![]])
                };
                stuck |= activate && name == "slow";
                if stuck && activate {
                    held.extend(answer);
                } else {
                    stuck = false;
                    out.append(&mut held);
                    out.extend(answer);
                }
            }
            for d in pack_datagrams(&out, 4096) {
                sock.send(&d).unwrap();
            }
        }
    }

    /// Runs `text` against [`stuck_daemon`] with a client timeout of one
    /// second: what it wrote to stdout and stderr, and the failures.
    fn run_stuck(text: &str, force: bool) -> (String, String, usize) {
        let (a, b) = nlproto::client::seqpacket_pair().unwrap();
        let daemon = std::thread::spawn(move || stuck_daemon(UnixDatagram::from(b)));
        let mut client = Client::from_fd(a, Duration::from_secs(5)).unwrap();
        client.set_timeout(Duration::from_secs(1));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let failures = run(&mut client, text, false, force, &mut out, &mut err);
        drop(client);
        daemon.join().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            failures,
        )
    }

    const STUCK: &str = "\
activate slow
activate ov2
lookup-stats
activate missing
activate ov5
";

    /// The daemon does not answer lines 1 and 2 in time; their answers
    /// come later, when line 3 is waiting. Lines 1 and 2 fail with the
    /// timeout, line 3 gets its own answer, not their late acks, and the
    /// lines after it are answered each their own.
    #[test]
    fn a_timeout_fails_the_lines_in_flight_and_late_answers_go_to_nobody() {
        let (out, err, failures) = run_stuck(STUCK, true);
        assert_eq!(
            err,
            "\
overlayctl: line 1: activate slow: no answer from the daemon within the timeout
overlayctl: line 2: activate ov2: no answer from the daemon within the timeout
overlayctl: line 4: activate missing: no device named missing (ENOENT)
"
        );
        assert_eq!(failures, 3);
        assert!(out.starts_with("REQUESTS"), "{out}");
    }

    /// Without --force the timeout stops the batch like any error: the
    /// waiting line is not run, nor any after it.
    #[test]
    fn without_force_a_timeout_stops_the_batch_at_the_lines_that_timed_out() {
        let (out, err, failures) = run_stuck(STUCK, false);
        assert_eq!(
            err,
            "\
overlayctl: line 1: activate slow: no answer from the daemon within the timeout
overlayctl: line 2: activate ov2: no answer from the daemon within the timeout
overlayctl: stopped at the first error; --force runs every line
"
        );
        assert_eq!(failures, 2);
        assert_eq!(out, "");
    }
}
