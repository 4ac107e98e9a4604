-- start_task: QUEUED|RUNNING -> RUNNING for a queue entry this dispatcher received, counting
-- the attempt. Entries for final tasks and superseded entries are acknowledged and dropped.
-- KEYS[1] task hash, KEYS[2] queue stream
-- ARGV[1] entry id, ARGV[2] group, ARGV[3] dispatched_at (µs), ARGV[4] worker
-- Returns {function_id, params, attempts} to run, or a status string: 'missing' | 'final' | 'stale'.
local status = redis.call('HGET', KEYS[1], 'status')
local function drop(outcome)
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  return outcome
end
if not status then
  return drop('missing')
end
if status == 'COMPLETED' or status == 'FAILED' then
  return drop('final')
end
if redis.call('HGET', KEYS[1], 'queue_entry') ~= ARGV[1] then
  return drop('stale')
end
redis.call('HSET', KEYS[1], 'status', 'RUNNING', 'dispatched_at', ARGV[3], 'worker', ARGV[4])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local fields = redis.call('HMGET', KEYS[1], 'function_id', 'params')
return {fields[1], fields[2], attempts}
