//! The SQLite schema, its migrations, and every query the gateway and `export-labels` use.
//!
//! Size: ~590 lines of code (the schema, its migrations and every query in one place, so the SQL
//! can be reviewed together); the rest is its tests.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &["CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        ended_unix_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        handoff_id TEXT,
        reason TEXT,
        peak_score REAL NOT NULL,
        min_confidence REAL,
        topics TEXT NOT NULL,
        flagged TEXT NOT NULL,
        signals TEXT NOT NULL,
        tone TEXT NOT NULL,
        attributes TEXT NOT NULL,
        summary TEXT,
        label_needed INTEGER,
        label_note TEXT,
        label_by TEXT
    );
    CREATE INDEX calls_ended ON calls (ended_unix_ms);
    CREATE TABLE handoffs (
        handoff_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        event TEXT NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'pending',
        created_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX handoffs_created ON handoffs (created_unix_ms);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        handoff_id TEXT NOT NULL REFERENCES handoffs (handoff_id) ON DELETE CASCADE,
        needed INTEGER NOT NULL,
        note TEXT,
        agent TEXT,
        at_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX feedback_handoff ON feedback (handoff_id);"];

const DAY_MS: i64 = 86_400_000;

/// One point of a call's downsampled caller track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TonePoint {
    /// Media ms.
    pub t_ms: u64,
    /// Tone score 0..1.
    pub tone: f64,
    /// F0 against the caller's baseline, semitones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f0_rel_st: Option<f64>,
    /// Energy against the caller's baseline, dB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_rel_db: Option<f64>,
}

/// A call's features-only record, written when it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Provider call id.
    pub call_id: String,
    /// Provider.
    pub provider: String,
    /// Wall clock at the end, Unix ms.
    pub ended_unix_ms: i64,
    /// Media duration.
    pub duration_ms: u64,
    /// The handoff, if one was decided.
    pub handoff_id: Option<String>,
    /// Its first reason.
    pub reason: Option<String>,
    /// The highest combined score the call reached (1 on an escalation).
    pub peak_score: f64,
    /// The agent's lowest reported confidence.
    pub min_confidence: Option<f64>,
    /// Topics mentioned.
    pub topics: Vec<String>,
    /// Topics reported but not scored (`route`/`flag` roles).
    pub flagged: Vec<String>,
    /// Signals that crossed their threshold.
    pub signals: Vec<String>,
    /// The caller's track, downsampled.
    pub tone: Vec<TonePoint>,
    /// Stream-start attributes.
    pub attributes: BTreeMap<String, String>,
    /// The handoff's summary.
    pub summary: Option<serde_json::Value>,
}

/// `POST /v1/handoffs/{id}/feedback` and `POST /v1/reviews/{call_id}` bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// Whether the handoff (or, for a review, a handoff) was needed.
    pub needed: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// A stored handoff with its outcome and latest feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoffRow {
    /// The handoff event as emitted.
    pub event: serde_json::Value,
    /// `pending`, `connected`, `fallback`, `abandoned` or `failed`.
    pub outcome: String,
    /// The latest feedback.
    pub feedback: Option<Feedback>,
}

/// An ended call worth a look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    /// The call.
    pub call_id: String,
    /// Why it is worth a look, most important first.
    pub why: Vec<String>,
    /// How much, 0..1.
    pub score: f64,
    /// Its handoff, if any.
    pub handoff_id: Option<String>,
    /// Provider.
    pub provider: String,
    /// Wall clock at the end, Unix ms.
    pub ended_unix_ms: i64,
    /// A reviewer's label, once given.
    pub label: Option<Feedback>,
}

/// `GET /v1/reviews` filters.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewFilter {
    /// Only calls whose `why` contains this word (`near_miss`, `not_needed`, `flagged`,
    /// `low_confidence`, `handoff`).
    pub why: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only calls without a reviewer's label.
    pub unlabelled: Option<bool>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
    /// Only calls whose peak score was at or above this.
    pub min_score: Option<f64>,
}

/// Feedback counts of one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonTally {
    /// The handoff's first reason.
    pub reason: String,
    /// Feedback saying it was needed.
    pub needed: u64,
    /// All feedback.
    pub total: u64,
}

/// One label for `warmline export-labels`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelRow {
    /// The call.
    pub call_id: String,
    /// Its handoff, if any.
    pub handoff_id: Option<String>,
    /// The handoff's first reason.
    pub reason: Option<String>,
    /// Peak combined score.
    pub peak_score: f64,
    /// Whether a handoff was (or would have been) needed.
    pub needed: bool,
    /// `feedback` (the human who took the call) or `review`.
    pub source: String,
}

/// The database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    retention_days: u32,
    max_calls: u64,
}

fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Db {
    /// Opens (creating) the file and applies pending migrations.
    pub fn open(path: &Path, retention_days: u32, max_calls: u64) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        Self::init(conn, retention_days, max_calls)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, 30, 100_000)
    }

    fn init(conn: Connection, retention_days: u32, max_calls: u64) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::Version {
                found: version,
                supported,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self {
            conn,
            retention_days,
            max_calls,
        })
    }

    /// Files a decided handoff (outcome `pending`).
    pub fn put_handoff(
        &mut self,
        handoff_id: &str,
        call_id: &str,
        reason: &str,
        event: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO handoffs (handoff_id, call_id, reason, event, created_unix_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![handoff_id, call_id, reason, json(event)?, now_unix_ms()],
        )?;
        Ok(())
    }

    /// Sets a handoff's outcome.
    pub fn set_outcome(&mut self, handoff_id: &str, outcome: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE handoffs SET outcome = ?2 WHERE handoff_id = ?1",
            params![handoff_id, outcome],
        )?;
        Ok(())
    }

    /// A handoff with its outcome and latest feedback.
    pub fn handoff(&self, handoff_id: &str) -> Result<Option<HandoffRow>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT event, outcome FROM handoffs WHERE handoff_id = ?1",
                [handoff_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((event, outcome)) = row else {
            return Ok(None);
        };
        let feedback = self
            .conn
            .query_row(
                "SELECT needed, note, agent FROM feedback WHERE handoff_id = ?1
                 ORDER BY id DESC LIMIT 1",
                [handoff_id],
                |r| {
                    Ok(Feedback {
                        needed: r.get(0)?,
                        note: r.get(1)?,
                        agent: r.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(Some(HandoffRow {
            event: serde_json::from_str(&event)?,
            outcome,
            feedback,
        }))
    }

    /// Adds feedback to a handoff; returns the handoff's reason, or `None` for an unknown id.
    pub fn add_feedback(
        &mut self,
        handoff_id: &str,
        fb: &Feedback,
    ) -> Result<Option<String>, StoreError> {
        let reason: Option<String> = self
            .conn
            .query_row(
                "SELECT reason FROM handoffs WHERE handoff_id = ?1",
                [handoff_id],
                |r| r.get(0),
            )
            .optional()?;
        if reason.is_some() {
            self.conn.execute(
                "INSERT INTO feedback (handoff_id, needed, note, agent, at_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![handoff_id, fb.needed, fb.note, fb.agent, now_unix_ms()],
            )?;
        }
        Ok(reason)
    }

    /// Feedback counts per reason (the latest feedback of each handoff counts).
    pub fn precision(&self) -> Result<Vec<ReasonTally>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT h.reason, SUM(f.needed), COUNT(*) FROM handoffs h
             JOIN feedback f ON f.id = (SELECT MAX(id) FROM feedback WHERE handoff_id = h.handoff_id)
             GROUP BY h.reason ORDER BY h.reason",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ReasonTally {
                reason: r.get(0)?,
                needed: r.get::<_, i64>(1)?.max(0) as u64,
                total: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a call's record, then applies retention.
    pub fn put_call(&mut self, c: &CallRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO calls (call_id, provider, ended_unix_ms, duration_ms,
                handoff_id, reason, peak_score, min_confidence, topics, flagged, signals, tone,
                attributes, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                c.call_id,
                c.provider,
                c.ended_unix_ms,
                i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
                c.handoff_id,
                c.reason,
                c.peak_score,
                c.min_confidence,
                json(&c.topics)?,
                json(&c.flagged)?,
                json(&c.signals)?,
                json(&c.tone)?,
                json(&c.attributes)?,
                c.summary.as_ref().map(json).transpose()?,
            ],
        )?;
        self.prune(now_unix_ms())
    }

    /// A call's record.
    pub fn call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT call_id, provider, ended_unix_ms, duration_ms, handoff_id, reason,
                    peak_score, min_confidence, topics, flagged, signals, tone, attributes, summary
                 FROM calls WHERE call_id = ?1",
                [call_id],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, f64>(6)?,
                        ),
                        (
                            r.get::<_, Option<f64>>(7)?,
                            r.get::<_, String>(8)?,
                            r.get::<_, String>(9)?,
                            r.get::<_, String>(10)?,
                            r.get::<_, String>(11)?,
                            r.get::<_, String>(12)?,
                            r.get::<_, Option<String>>(13)?,
                        ),
                    ))
                },
            )
            .optional()?;
        let Some((a, b)) = row else {
            return Ok(None);
        };
        Ok(Some(CallRecord {
            call_id: a.0,
            provider: a.1,
            ended_unix_ms: a.2,
            duration_ms: a.3.max(0) as u64,
            handoff_id: a.4,
            reason: a.5,
            peak_score: a.6,
            min_confidence: b.0,
            topics: serde_json::from_str(&b.1)?,
            flagged: serde_json::from_str(&b.2)?,
            signals: serde_json::from_str(&b.3)?,
            tone: serde_json::from_str(&b.4)?,
            attributes: serde_json::from_str(&b.5)?,
            summary: b
                .6
                .map(|s| serde_json::from_str::<serde_json::Value>(&s))
                .transpose()?,
        }))
    }

    /// A reviewer's label on an ended call; `false` for an unknown call.
    pub fn label_call(&mut self, call_id: &str, fb: &Feedback) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE calls SET label_needed = ?2, label_note = ?3, label_by = ?4 WHERE call_id = ?1",
            params![call_id, fb.needed, fb.note, fb.agent],
        )?;
        Ok(n > 0)
    }

    /// Deletes records older than the retention and beyond the count cap (oldest first).
    pub fn prune(&mut self, now_unix_ms: i64) -> Result<(), StoreError> {
        let cutoff = now_unix_ms - i64::from(self.retention_days) * DAY_MS;
        self.conn
            .execute("DELETE FROM calls WHERE ended_unix_ms < ?1", [cutoff])?;
        self.conn
            .execute("DELETE FROM handoffs WHERE created_unix_ms < ?1", [cutoff])?;
        let cap = i64::try_from(self.max_calls).unwrap_or(i64::MAX);
        self.conn.execute(
            "DELETE FROM calls WHERE call_id IN (SELECT call_id FROM calls
             ORDER BY ended_unix_ms DESC LIMIT -1 OFFSET ?1)",
            [cap],
        )?;
        self.conn.execute(
            "DELETE FROM handoffs WHERE handoff_id IN (SELECT handoff_id FROM handoffs
             ORDER BY created_unix_ms DESC LIMIT -1 OFFSET ?1)",
            [cap],
        )?;
        Ok(())
    }

    /// Ended calls most worth a human's look, most first.
    ///
    /// A handoff marked not needed scores 1; a near miss (no handoff, peak score close to the
    /// threshold) its peak over the threshold; flagged topics without a handoff 0.6; a low
    /// agent confidence one minus it. A call's score is the highest of its reasons.
    pub fn reviews(
        &self,
        filter: &ReviewFilter,
        handoff_threshold: f64,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        // Bounded scan: the newest records (retention bounds the table anyway).
        let mut st = self.conn.prepare(
            "SELECT c.call_id, c.provider, c.ended_unix_ms, c.handoff_id, c.peak_score,
                c.min_confidence, c.flagged, c.label_needed, c.label_note, c.label_by,
                (SELECT f.needed FROM feedback f WHERE f.handoff_id = c.handoff_id
                 ORDER BY f.id DESC LIMIT 1)
             FROM calls c ORDER BY c.ended_unix_ms DESC LIMIT 5000",
        )?;
        let mut items = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let call_id: String = r.get(0)?;
            let provider: String = r.get(1)?;
            let ended_unix_ms: i64 = r.get(2)?;
            let handoff_id: Option<String> = r.get(3)?;
            let peak: f64 = r.get(4)?;
            let min_conf: Option<f64> = r.get(5)?;
            let flagged: Vec<String> = serde_json::from_str(&r.get::<_, String>(6)?)?;
            let label = r.get::<_, Option<bool>>(7)?.map(|needed| Feedback {
                needed,
                note: r.get(8).ok().flatten(),
                agent: r.get(9).ok().flatten(),
            });
            let fb_needed: Option<bool> = r.get(10)?;
            let mut why: Vec<(f64, String)> = Vec::new();
            if fb_needed == Some(false) {
                why.push((1.0, "not_needed: handoff marked not needed".into()));
            }
            if handoff_id.is_none() && peak >= 0.5 * handoff_threshold && peak > 0.0 {
                why.push((
                    (peak / handoff_threshold).min(0.99),
                    format!("near_miss: peak score {peak:.2} of {handoff_threshold:.2}"),
                ));
            }
            if handoff_id.is_none() && !flagged.is_empty() {
                why.push((0.6, format!("flagged: {}", flagged.join(", "))));
            }
            if let Some(c) = min_conf.filter(|c| *c < 0.5) {
                why.push((
                    1.0 - c,
                    format!("low_confidence: assistant confidence down to {c:.2}"),
                ));
            }
            if why.is_empty() {
                continue;
            }
            why.sort_by(|a, b| b.0.total_cmp(&a.0));
            let score = (why[0].0 * 1000.0).round() / 1000.0;
            let why: Vec<String> = why.into_iter().map(|(_, w)| w).collect();
            if filter
                .why
                .as_deref()
                .is_some_and(|w| !why.iter().any(|x| x.starts_with(w)))
                || filter.provider.as_deref().is_some_and(|p| p != provider)
                || (filter.unlabelled == Some(true) && label.is_some())
                || filter.min_score.is_some_and(|m| peak < m)
            {
                continue;
            }
            items.push(ReviewItem {
                call_id,
                why,
                score,
                handoff_id,
                provider,
                ended_unix_ms,
                label,
            });
        }
        items.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.ended_unix_ms.cmp(&a.ended_unix_ms))
        });
        items.truncate(filter.limit.unwrap_or(50).min(500));
        Ok(items)
    }

    /// Every label: the latest feedback of each handoff, and reviewers' labels on calls.
    pub fn labels(&self) -> Result<Vec<LabelRow>, StoreError> {
        let mut out = Vec::new();
        let mut st = self.conn.prepare(
            "SELECT h.call_id, h.handoff_id, h.reason, f.needed,
                COALESCE((SELECT peak_score FROM calls c WHERE c.call_id = h.call_id), 1.0)
             FROM handoffs h
             JOIN feedback f ON f.id = (SELECT MAX(id) FROM feedback WHERE handoff_id = h.handoff_id)
             ORDER BY h.created_unix_ms",
        )?;
        let rows = st.query_map([], |r| {
            Ok(LabelRow {
                call_id: r.get(0)?,
                handoff_id: r.get(1)?,
                reason: r.get(2)?,
                needed: r.get(3)?,
                peak_score: r.get(4)?,
                source: "feedback".into(),
            })
        })?;
        for row in rows {
            out.push(row?);
        }
        let mut st = self.conn.prepare(
            "SELECT call_id, handoff_id, reason, label_needed, peak_score FROM calls
             WHERE label_needed IS NOT NULL ORDER BY ended_unix_ms",
        )?;
        let rows = st.query_map([], |r| {
            Ok(LabelRow {
                call_id: r.get(0)?,
                handoff_id: r.get(1)?,
                reason: r.get(2)?,
                needed: r.get(3)?,
                peak_score: r.get(4)?,
                source: "review".into(),
            })
        })?;
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, ended: i64, handoff: Option<&str>, peak: f64) -> CallRecord {
        CallRecord {
            call_id: id.into(),
            provider: "twilio".into(),
            ended_unix_ms: ended,
            duration_ms: 60_000,
            handoff_id: handoff.map(str::to_owned),
            reason: handoff.map(|_| "topic".to_owned()),
            peak_score: peak,
            ..Default::default()
        }
    }

    #[test]
    fn migrations_are_idempotent_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        drop(Db::open(&path, 30, 10).unwrap());
        let db = Db::open(&path, 30, 10).unwrap();
        let v: i64 = db
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        db.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            Db::open(&path, 30, 10),
            Err(StoreError::Version { found: 99, .. })
        ));
    }

    #[test]
    fn feedback_precision_and_reviews() {
        let mut db = Db::in_memory().unwrap();
        let ev = serde_json::json!({"event": "handoff", "handoff_id": "ho_1"});
        db.put_handoff("ho_1", "CA1", "topic", &ev).unwrap();
        db.put_handoff("ho_2", "CA2", "topic", &ev).unwrap();
        let now = now_unix_ms();
        db.put_call(&record("CA1", now, Some("ho_1"), 1.0)).unwrap();
        db.put_call(&record("CA2", now, Some("ho_2"), 1.0)).unwrap();
        db.put_call(&record("CA3", now, None, 0.5)).unwrap();
        db.put_call(&record("CA4", now, None, 0.1)).unwrap();
        let no = Feedback {
            needed: false,
            note: Some("just wanted a receipt".into()),
            agent: Some("ana".into()),
        };
        assert_eq!(
            db.add_feedback("ho_1", &no).unwrap().as_deref(),
            Some("topic")
        );
        let yes = Feedback {
            needed: true,
            note: None,
            agent: None,
        };
        db.add_feedback("ho_2", &yes).unwrap();
        assert_eq!(db.add_feedback("ho_nope", &yes).unwrap(), None);
        let p = db.precision().unwrap();
        assert_eq!((p[0].needed, p[0].total), (1, 2));
        assert_eq!(db.handoff("ho_1").unwrap().unwrap().feedback, Some(no));
        let r = db.reviews(&ReviewFilter::default(), 0.6).unwrap();
        let ids: Vec<&str> = r.iter().map(|i| i.call_id.as_str()).collect();
        assert_eq!(ids, ["CA1", "CA3"]);
        assert!(r[1].why[0].starts_with("near_miss"));
        let f = ReviewFilter {
            why: Some("near_miss".into()),
            ..Default::default()
        };
        assert_eq!(db.reviews(&f, 0.6).unwrap().len(), 1);
        assert!(db.label_call("CA3", &yes).unwrap());
        assert!(!db.label_call("CA9", &yes).unwrap());
        let labels = db.labels().unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels[2].source, "review");
    }

    #[test]
    fn retention_by_age_and_count() {
        let mut db = Db::in_memory().unwrap();
        db.max_calls = 2;
        let now = now_unix_ms();
        db.put_call(&record("old", now - 31 * DAY_MS, None, 0.0))
            .unwrap();
        assert!(db.call("old").unwrap().is_none());
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            db.put_call(&record(id, now + i as i64, None, 0.0)).unwrap();
        }
        assert!(db.call("a").unwrap().is_none());
        assert!(db.call("c").unwrap().is_some());
    }
}
