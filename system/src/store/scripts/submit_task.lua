-- submit_task: create a task record, append it to the durable queue and announce it, atomically,
-- so no crash between steps leaves a task that no dispatcher will ever see.
-- KEYS[1] function hash, KEYS[2] task hash, KEYS[3] queue stream
-- ARGV[1] task id, ARGV[2] function id, ARGV[3] params, ARGV[4] submitted_at (µs), ARGV[5] channel
-- Returns 1 when queued, 0 when the function is not registered.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local entry = redis.call('XADD', KEYS[3], '*', 'task', ARGV[1])
redis.call('HSET', KEYS[2],
  'function_id', ARGV[2], 'params', ARGV[3], 'status', 'QUEUED',
  'submitted_at', ARGV[4], 'attempts', 0, 'queue_entry', entry)
redis.call('PUBLISH', ARGV[5], ARGV[1])
return 1
