-- cancel_task: a QUEUED or RUNNING task becomes FAILED with the given cancellation exception;
-- its queue entry is acknowledged and deleted (a dispatcher that reads it later drops it),
-- and the dispatchers are told, so whoever runs it stops its executor. Final tasks stay as
-- they are (first write wins here too).
-- KEYS[1] queue stream, KEYS[1 + i] task hash of task i
-- ARGV[1] group, ARGV[2] finished_at (µs), ARGV[3] done channel, ARGV[4] cancel channel,
-- ARGV[5] retention of final tasks (ms, 0: forever), then two per task i, from
-- ARGV[6 + 2(i-1)]: result, task id
-- Returns, per task, the status it had: 'QUEUED' | 'RUNNING' (now cancelled), 'COMPLETED' |
-- 'FAILED' (unchanged), or 'missing'.
local out = {}
for i = 2, #KEYS do
  local task = KEYS[i]
  local a = 6 + 2 * (i - 2)
  local status = redis.call('HGET', task, 'status')
  if not status then
    out[i - 1] = 'missing'
  elseif status == 'COMPLETED' or status == 'FAILED' then
    out[i - 1] = status
  else
    redis.call('HSET', task, 'status', 'FAILED', 'result', ARGV[a], 'finished_at', ARGV[2],
      'cancelled_at', ARGV[2])
    -- A final task has no live entry: what it no longer needs is not kept for its retention.
    local entry = redis.call('HGET', task, 'queue_entry')
    redis.call('HDEL', task, 'params', 'queue_entry')
    if ARGV[5] ~= '0' then
      redis.call('PEXPIRE', task, ARGV[5])
    end
    if entry then
      redis.call('XACK', KEYS[1], ARGV[1], entry)
      redis.call('XDEL', KEYS[1], entry)
    end
    redis.call('PUBLISH', ARGV[3], ARGV[a + 1])
    if status == 'RUNNING' then
      redis.call('PUBLISH', ARGV[4], ARGV[a + 1])
    end
    out[i - 1] = status
  end
end
return out
