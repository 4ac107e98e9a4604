-- drop_consumers: removes from the queue's group the consumers of dispatchers found dead with
-- nothing pending. The check and the removal are one step: a dispatcher that comes back (it
-- was only paused) and reads entries between a separate check and removal would have them
-- dropped with its consumer, delivered and pending for nobody, for good.
-- KEYS[1] queue stream, KEYS[1 + i] liveness key of consumer i
-- ARGV[1] group, ARGV[1 + i] consumer i
-- Returns, per consumer, 1 when removed, 0 when kept (alive again, or holding entries).
local out = {}
for i = 2, #KEYS do
  local consumer = ARGV[i]
  if redis.call('EXISTS', KEYS[i]) == 1
    or #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, consumer) > 0 then
    out[i - 1] = 0
  else
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], consumer)
    out[i - 1] = 1
  end
end
return out
