-- finish_task: record a final outcome, first write wins: a late or duplicate result never
-- overwrites COMPLETED/FAILED. Acknowledges the queue entry and announces the task as done.
-- KEYS[1] task hash, KEYS[2] queue stream
-- ARGV[1] status (COMPLETED|FAILED), ARGV[2] result, ARGV[3] finished_at (µs),
-- ARGV[4] started_at (µs, or '' when the executor never started it), ARGV[5] group,
-- ARGV[6] done channel, ARGV[7] task id, ARGV[8] executor that ran it (or '')
-- Returns 1 when recorded, 0 when the task was already final, -1 when it does not exist.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return -1
end
if status == 'COMPLETED' or status == 'FAILED' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'result', ARGV[2], 'finished_at', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[4])
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'executor', ARGV[8])
end
redis.call('HDEL', KEYS[1], 'params')
local entry = redis.call('HGET', KEYS[1], 'queue_entry')
if entry then
  redis.call('XACK', KEYS[2], ARGV[5], entry)
  redis.call('XDEL', KEYS[2], entry)
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
