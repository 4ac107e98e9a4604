-- requeue_task: a task whose dispatcher, worker or executor was lost goes back to the tail of
-- the queue under a new entry, or is FAILED once it has used its attempts.
-- KEYS[1] task hash, KEYS[2] queue stream
-- ARGV[1] abandoned entry id, ARGV[2] group, ARGV[3] max attempts, ARGV[4] failure result,
-- ARGV[5] finished_at (µs), ARGV[6] done channel, ARGV[7] task id
-- Returns 'requeued' | 'failed' | 'final' | 'stale'.
local status = redis.call('HGET', KEYS[1], 'status')
redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[2], ARGV[1])
if not status or status == 'COMPLETED' or status == 'FAILED' then
  return 'final'
end
if redis.call('HGET', KEYS[1], 'queue_entry') ~= ARGV[1] then
  return 'stale'
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
if attempts >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'FAILED', 'result', ARGV[4], 'finished_at', ARGV[5])
  redis.call('HDEL', KEYS[1], 'params')
  redis.call('PUBLISH', ARGV[6], ARGV[7])
  return 'failed'
end
local entry = redis.call('XADD', KEYS[2], '*', 'task', ARGV[7])
redis.call('HSET', KEYS[1], 'queue_entry', entry)
return 'requeued'
