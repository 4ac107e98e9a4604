-- submit_task: create task records, append each to the durable queue and announce it,
-- atomically, so no crash between steps leaves a task that no dispatcher will ever see.
-- One call submits a whole batch of one function's tasks: the per-call cost of a script is paid
-- once.
-- KEYS[1] function hash, KEYS[2] queue stream, KEYS[2 + i] task hash of task i
-- ARGV[1] function id, ARGV[2] submitted_at (µs), ARGV[3] channel, then two per task i, from
-- ARGV[4 + 2(i-1)]: task id, params
-- Returns, per task, 1 when queued, 0 when the function is not registered (nothing is created).
local out = {}
local registered = redis.call('EXISTS', KEYS[1]) == 1
for i = 3, #KEYS do
  if registered then
    local a = 4 + 2 * (i - 3)
    local entry = redis.call('XADD', KEYS[2], '*', 'task', ARGV[a])
    redis.call('HSET', KEYS[i],
      'function_id', ARGV[1], 'params', ARGV[a + 1], 'status', 'QUEUED',
      'submitted_at', ARGV[2], 'attempts', 0, 'queue_entry', entry)
    redis.call('PUBLISH', ARGV[3], ARGV[a])
    out[i - 2] = 1
  else
    out[i - 2] = 0
  end
end
return out
