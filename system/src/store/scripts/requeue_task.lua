-- requeue_task: a task whose dispatcher, worker or executor was lost goes back to the tail of
-- the queue under a new entry, or is FAILED once it has used its attempts. The abandoned entry
-- is acknowledged and deleted either way.
-- KEYS[1] queue stream, KEYS[1 + i] task hash of task i
-- ARGV[1] group, ARGV[2] max attempts, ARGV[3] finished_at (µs), ARGV[4] done channel,
-- ARGV[5] retention of final tasks (ms, 0: forever), then three per task i, from
-- ARGV[6 + 3(i-1)]: abandoned entry id, failure result, task id
-- Returns, per task, 'requeued' | 'failed' | 'final' (final or missing) | 'stale' (the entry
-- was superseded by another requeue).
local out = {}
for i = 2, #KEYS do
  local task = KEYS[i]
  local a = 6 + 3 * (i - 2)
  local abandoned = ARGV[a]
  local status = redis.call('HGET', task, 'status')
  redis.call('XACK', KEYS[1], ARGV[1], abandoned)
  redis.call('XDEL', KEYS[1], abandoned)
  if not status or status == 'COMPLETED' or status == 'FAILED' then
    out[i - 1] = 'final'
  elseif redis.call('HGET', task, 'queue_entry') ~= abandoned then
    out[i - 1] = 'stale'
  elseif tonumber(redis.call('HGET', task, 'attempts') or '0') >= tonumber(ARGV[2]) then
    redis.call('HSET', task, 'status', 'FAILED', 'result', ARGV[a + 1], 'finished_at', ARGV[3])
    redis.call('HDEL', task, 'params', 'queue_entry')
    if ARGV[5] ~= '0' then
      redis.call('PEXPIRE', task, ARGV[5])
    end
    redis.call('PUBLISH', ARGV[4], ARGV[a + 2])
    out[i - 1] = 'failed'
  else
    local entry = redis.call('XADD', KEYS[1], '*', 'task', ARGV[a + 2])
    redis.call('HSET', task, 'queue_entry', entry)
    out[i - 1] = 'requeued'
  end
end
return out
