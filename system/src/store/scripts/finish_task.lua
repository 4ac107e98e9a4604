-- finish_tasks: record final outcomes, first write wins: a late or duplicate result never
-- overwrites COMPLETED/FAILED. An outcome recorded under a claim (the queue entry its dispatcher
-- started the task from) is fenced: once the task was requeued under a new entry, the claim is
-- lost and the outcome is not recorded. An outcome without a claim (a worker's result for a task
-- this dispatcher does not hold) is recorded if the task is not final. Each outcome it records also acknowledges and deletes the task's
-- queue entry and starts the task's retention clock; the tasks recorded are announced as done in
-- one message, their ids separated by spaces (a final or missing task is left as it is).
-- One call records a whole batch: the per-call cost of a script is paid once.
-- KEYS[1] queue stream, KEYS[1 + i] task hash of outcome i
-- ARGV[1] group, ARGV[2] done channel, ARGV[3] retention of final tasks (ms, 0: forever), then
-- seven per outcome i, from ARGV[4 + 7(i-1)]:
-- status (COMPLETED|FAILED), result, finished_at (µs), started_at (µs, or '' when the executor
-- never started it), task id, executor that ran it (or ''), claim (entry id, or '' for none)
-- Returns, per outcome, 1 when recorded, 0 when the task was already final, -1 when it does
-- not exist, -2 when the claim was lost.
local out = {}
local done = {}
for i = 2, #KEYS do
  local task = KEYS[i]
  local a = 4 + 7 * (i - 2)
  local status = redis.call('HGET', task, 'status')
  if not status then
    out[i - 1] = -1
  elseif status == 'COMPLETED' or status == 'FAILED' then
    out[i - 1] = 0
  elseif ARGV[a + 6] ~= '' and redis.call('HGET', task, 'queue_entry') ~= ARGV[a + 6] then
    out[i - 1] = -2
  else
    redis.call('HSET', task, 'status', ARGV[a], 'result', ARGV[a + 1], 'finished_at', ARGV[a + 2])
    if ARGV[a + 3] ~= '' then
      redis.call('HSET', task, 'started_at', ARGV[a + 3])
    end
    if ARGV[a + 5] ~= '' then
      redis.call('HSET', task, 'executor', ARGV[a + 5])
    end
    -- A final task has no live entry: what it no longer needs is not kept for its retention.
    local entry = redis.call('HGET', task, 'queue_entry')
    redis.call('HDEL', task, 'params', 'queue_entry')
    if ARGV[3] ~= '0' then
      redis.call('PEXPIRE', task, ARGV[3])
    end
    if entry then
      redis.call('XACK', KEYS[1], ARGV[1], entry)
      redis.call('XDEL', KEYS[1], entry)
    end
    done[#done + 1] = ARGV[a + 4]
    out[i - 1] = 1
  end
end
if #done > 0 then
  redis.call('PUBLISH', ARGV[2], table.concat(done, ' '))
end
return out
