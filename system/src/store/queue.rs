//! The durable queue: a stream read through one consumer group shared by all dispatchers.
//! Receiving entries, the queue's depth, dispatcher liveness markers, and the entries a
//! dispatcher holds (to recover them when it is dead).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{
    StreamInfoConsumersReply, StreamPendingCountReply, StreamRangeReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{AsyncCommands, Value};

use super::scripts::{ScriptCall, Transition};
use super::{RESPONSE_TIMEOUT, Store, StoreError, keys};
use crate::task::{TaskId, now_micros};

/// Pending entries read per round trip when listing what a consumer holds.
const PENDING_PAGE: usize = 1000;

/// The durable queue at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Entries no dispatcher has taken yet.
    pub waiting: u64,
    /// Entries delivered to a dispatcher whose task is not final yet.
    pub held: u64,
}

/// A queue entry this dispatcher received, not yet started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The stream entry id; the task hash names its live entry in `queue_entry`.
    pub entry_id: String,
    pub task_id: TaskId,
}

/// A queue entry held by a dispatcher that is no longer alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedEntry {
    pub consumer: String,
    pub entry: QueueEntry,
}

/// A dedicated connection for blocking queue reads.
pub struct QueueReader {
    conn: ConnectionManager,
}

impl QueueReader {
    /// Opens a connection (to the current primary, for a Sentinel address) whose response
    /// timeout leaves room for reads blocking up to `max_block`.
    pub async fn connect(url: &str, max_block: Duration) -> Result<Self, StoreError> {
        let url = super::RedisAddress::parse(url)?.current().await?;
        let conn = super::connect(&url, RESPONSE_TIMEOUT + max_block).await?;
        Ok(Self { conn })
    }
}

impl Store {
    /// How many tasks wait in the queue and how many dispatchers hold (delivered, not final).
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut conn = self.conn();
        let length: u64 = redis::cmd("XLEN")
            .arg(keys::QUEUE)
            .query_async(&mut conn)
            .await?;
        // No group yet (no dispatcher ever ran): nothing is held.
        let pending: Result<Value, _> = redis::cmd("XPENDING")
            .arg(keys::QUEUE)
            .arg(keys::QUEUE_GROUP)
            .query_async(&mut conn)
            .await;
        let held = match pending {
            Ok(Value::Array(summary)) => summary
                .first()
                .and_then(|v| redis::from_redis_value::<u64>(v.clone()).ok())
                .unwrap_or(0),
            Ok(_) => 0,
            Err(e) if e.code() == Some("NOGROUP") => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(QueueStats {
            waiting: length.saturating_sub(held),
            held,
        })
    }

    /// Creates the dispatchers' consumer group (and the stream) unless they exist. The group
    /// starts at the beginning of the stream so entries added before any dispatcher ran are
    /// delivered too; the stream only ever holds live tasks.
    pub async fn ensure_queue_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let created: Result<(), _> = conn
            .xgroup_create_mkstream(keys::QUEUE, keys::QUEUE_GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Marks the dispatcher `consumer` alive for `ttl`.
    pub async fn mark_dispatcher_alive(
        &self,
        consumer: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let () = conn
            .pset_ex(keys::dispatcher(consumer), now_micros(), ttl_ms)
            .await?;
        Ok(())
    }

    /// Refreshes the liveness marker of the dispatcher `consumer` for `ttl`, creating it if it
    /// had lapsed. Returns whether it was still there: `false` means the dispatcher was away
    /// (paused, cut off from Redis) long enough for its peers to take its tasks over.
    pub async fn refresh_dispatcher_liveness(
        &self,
        consumer: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let refreshed: Option<String> = redis::cmd("SET")
            .arg(keys::dispatcher(consumer))
            .arg(now_micros())
            .arg("PX")
            .arg(ttl_ms)
            .arg("XX")
            .query_async(&mut conn)
            .await?;
        if refreshed.is_some() {
            return Ok(true);
        }
        self.mark_dispatcher_alive(consumer, ttl).await?;
        Ok(false)
    }

    /// Removes a dispatcher's liveness marker alone, keeping its consumer and the entries
    /// still pending for it: the next recovery scan (of a peer or a successor) takes them.
    pub async fn end_liveness(&self, consumer: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: i64 = conn.del(keys::dispatcher(consumer)).await?;
        Ok(())
    }

    /// Removes a dispatcher's liveness marker and its (empty) consumer from the group.
    /// Deleting a consumer drops whatever is still pending for it: only call this once
    /// nothing is.
    pub async fn retire_dispatcher(&self, consumer: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let ((), _): ((), i64) = redis::pipe()
            .del(keys::dispatcher(consumer))
            .xgroup_delconsumer(keys::QUEUE, keys::QUEUE_GROUP, consumer)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Receives up to `count` new entries for `consumer`, waiting up to `block` for the first.
    ///
    /// Takes its own connection: a blocking read must not stall the commands multiplexed on
    /// the shared one. Never cancel the returned future once polled: entries Redis delivered
    /// to a dropped read stay pending for this consumer until it is declared dead.
    pub async fn read_queue(
        reader: &mut QueueReader,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let block_ms = usize::try_from(block.as_millis()).unwrap_or(usize::MAX);
        let options = StreamReadOptions::default()
            .group(keys::QUEUE_GROUP, consumer)
            .count(count)
            .block(block_ms);
        let reply: Option<StreamReadReply> = reader
            .conn
            .xread_options(&[keys::QUEUE], &[">"], &options)
            .await?;
        let mut entries = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for item in stream.ids {
                entries.push(parse_entry(item.id, &item.map)?);
            }
        }
        Ok(entries)
    }

    /// Entries held by consumers of the group other than `me` whose liveness marker has
    /// expired: their dispatcher died (or was stopped) with these tasks in hand. Consumers found
    /// dead with nothing pending are removed from the group.
    pub async fn orphaned_entries(&self, me: &str) -> Result<Vec<OrphanedEntry>, StoreError> {
        let mut conn = self.conn();
        let info: StreamInfoConsumersReply =
            conn.xinfo_consumers(keys::QUEUE, keys::QUEUE_GROUP).await?;
        let mut orphans = Vec::new();
        let mut empty =
            ScriptCall::new(Transition::DropConsumers, &[keys::QUEUE], keys::QUEUE_GROUP);
        for consumer in info.consumers.into_iter().filter(|c| c.name != me) {
            let alive: bool = conn.exists(keys::dispatcher(&consumer.name)).await?;
            if alive {
                continue;
            }
            if consumer.pending == 0 {
                // Checked again in the script, atomically with the removal.
                empty.task(keys::dispatcher(&consumer.name), &consumer.name);
                continue;
            }
            orphans.extend(self.pending_entries(&consumer.name).await?);
        }
        let _: Vec<i64> = self.run_script(&empty).await?;
        Ok(orphans)
    }

    /// Every entry delivered to `consumer` and not yet acknowledged, oldest first.
    pub async fn pending_entries(&self, consumer: &str) -> Result<Vec<OrphanedEntry>, StoreError> {
        self.pending_entries_idle(consumer, Duration::ZERO).await
    }

    /// The entries delivered to `consumer`, not yet acknowledged, and not delivered again for
    /// at least `min_idle`, oldest first.
    pub async fn pending_entries_idle(
        &self,
        consumer: &str,
        min_idle: Duration,
    ) -> Result<Vec<OrphanedEntry>, StoreError> {
        let mut conn = self.conn();
        let mut start = "-".to_owned();
        let mut orphans = Vec::new();
        let min_idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(keys::QUEUE)
                .arg(keys::QUEUE_GROUP)
                .arg("IDLE")
                .arg(min_idle_ms)
                .arg(&start)
                .arg("+")
                .arg(PENDING_PAGE)
                .arg(consumer)
                .query_async(&mut conn)
                .await?;
            let ids: Vec<String> = pending.ids.into_iter().map(|p| p.id).collect();
            let Some(last) = ids.last().cloned() else {
                break;
            };
            // XPENDING does not return the entries' fields; XRANGE per id does, and an id
            // missing there was deleted after delivery (its task is final).
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.xrange(keys::QUEUE, id, id);
            }
            let ranges: Vec<StreamRangeReply> = pipe.query_async(&mut conn).await?;
            for (id, range) in ids.iter().zip(ranges) {
                match range.ids.into_iter().next() {
                    Some(item) => orphans.push(OrphanedEntry {
                        consumer: consumer.to_owned(),
                        entry: parse_entry(item.id, &item.map)?,
                    }),
                    None => {
                        let _: i64 = conn.xack(keys::QUEUE, keys::QUEUE_GROUP, &[id]).await?;
                    }
                }
            }
            if ids.len() < PENDING_PAGE {
                break;
            }
            start = format!("({last}");
        }
        Ok(orphans)
    }
}

fn parse_entry(
    entry_id: String,
    fields: &HashMap<String, Value>,
) -> Result<QueueEntry, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: format!("{} entry {entry_id}", keys::QUEUE),
        reason: reason.to_owned(),
    };
    let raw = fields.get("task").ok_or_else(|| corrupt("no task field"))?;
    let text: String =
        redis::from_redis_value_ref(raw).map_err(|_| corrupt("task field is not text"))?;
    let task_id = text
        .parse()
        .map_err(|_| corrupt("task field is not a uuid"))?;
    Ok(QueueEntry { entry_id, task_id })
}

#[cfg(test)]
mod tests;
