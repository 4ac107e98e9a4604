-- cancel_task: a QUEUED or RUNNING task becomes FAILED with the given cancellation exception;
-- its queue entry is acknowledged and deleted (a dispatcher that reads it later drops it),
-- and the dispatchers are told, so whoever runs it stops its executor. Final tasks stay as
-- they are (first write wins here too).
-- KEYS[1] task hash, KEYS[2] queue stream
-- ARGV[1] group, ARGV[2] result, ARGV[3] finished_at (µs), ARGV[4] done channel,
-- ARGV[5] cancel channel, ARGV[6] task id
-- Returns the status the task had: 'QUEUED' | 'RUNNING' (now cancelled), 'COMPLETED' |
-- 'FAILED' (unchanged), or 'missing'.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'missing'
end
if status == 'COMPLETED' or status == 'FAILED' then
  return status
end
redis.call('HSET', KEYS[1], 'status', 'FAILED', 'result', ARGV[2], 'finished_at', ARGV[3],
  'cancelled_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'params')
local entry = redis.call('HGET', KEYS[1], 'queue_entry')
if entry then
  redis.call('XACK', KEYS[2], ARGV[1], entry)
  redis.call('XDEL', KEYS[2], entry)
end
redis.call('PUBLISH', ARGV[4], ARGV[6])
if status == 'RUNNING' then
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
return status
