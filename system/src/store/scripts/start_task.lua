-- start_tasks: for each queue entry this dispatcher received, QUEUED|RUNNING -> RUNNING,
-- counting the attempt. Entries for final tasks and superseded entries are acknowledged and
-- dropped. One call starts a whole batch: the per-call cost of a script is paid once.
-- KEYS[1] queue stream, KEYS[1 + i] task hash of entry i
-- ARGV[1] group, ARGV[2] dispatched_at (µs), ARGV[3] the dispatcher starting them (its consumer
-- name), ARGV[4] the prefix of function keys, ARGV[4 + i] entry id i
-- Returns, per entry, {function_id, params, attempts, submitted_at, registered} to run
-- (registered: 1, or 0 when the function was deleted since), or a status string:
-- 'missing' | 'final' | 'stale'.
local out = {}
for i = 2, #KEYS do
  local task, entry = KEYS[i], ARGV[i + 3]
  local function drop(outcome)
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    redis.call('XDEL', KEYS[1], entry)
    return outcome
  end
  local status = redis.call('HGET', task, 'status')
  if not status then
    out[i - 1] = drop('missing')
  elseif status == 'COMPLETED' or status == 'FAILED' then
    out[i - 1] = drop('final')
  elseif redis.call('HGET', task, 'queue_entry') ~= entry then
    out[i - 1] = drop('stale')
  else
    redis.call('HSET', task, 'status', 'RUNNING', 'dispatched_at', ARGV[2], 'dispatcher', ARGV[3])
    -- Written by versions before the field was renamed: it would name an earlier attempt's.
    redis.call('HDEL', task, 'worker')
    local attempts = redis.call('HINCRBY', task, 'attempts', 1)
    local fields = redis.call('HMGET', task, 'function_id', 'params', 'submitted_at')
    -- The function's key is derived, not declared: the queue and the tasks name it, and a
    -- deleted function must not run even from a dispatcher's cache.
    local registered = redis.call('EXISTS', ARGV[4] .. (fields[1] or ''))
    out[i - 1] = {fields[1], fields[2], attempts, fields[3], registered}
  end
end
return out
