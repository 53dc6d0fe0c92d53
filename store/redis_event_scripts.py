"""The Lua scripts of the Redis event log (`store.redis_event_log` describes the keys).

Each runs atomically in Redis: ids grow strictly across nodes, a room is never
claimed twice and the due index always agrees with the events. Every script
takes the key prefix as ARGV[1] and names its keys from it.
"""

COMMON = """
local prefix = ARGV[1]
local due_key = prefix .. 'events:due'

local function event_key(seq) return prefix .. 'event:' .. seq end
local function room_key(room) return prefix .. 'events:room:' .. room end
local function int(n) return string.format('%.0f', n) end

-- Index a room at the time its oldest pending event may next be attempted.
local function reschedule(room)
  local pending = room_key(room)
  while true do
    local head = redis.call('ZRANGE', pending, 0, 0)[1]
    if not head then
      redis.call('ZREM', due_key, room)
      return
    end
    local f = redis.call('HMGET', event_key(head), 'status', 'next_attempt', 'claimed_until')
    if f[1] == 'pending' then
      local at = tonumber(f[2]) or 0
      local claimed = tonumber(f[3])
      if claimed and claimed > at then at = claimed end
      redis.call('ZADD', due_key, int(at), room)
      return
    end
    -- Expired or settled: no longer the room's head.
    redis.call('ZREM', pending, head)
  end
end

local function fields(seq)
  return redis.call('HMGET', event_key(seq),
    'event', 'status', 'attempts', 'next_attempt', 'delivered_at', 'last_error')
end
"""

# ARGV: prefix, ttl ms, then (occurred us, room id, event JSON) per event.
APPEND = (
    COMMON
    + """
local ttl = ARGV[2]
local sequence_key = prefix .. 'events:sequence'
local last = tonumber(redis.call('GET', sequence_key)) or 0
local rooms = {}
local out = {}
for i = 3, #ARGV, 3 do
  local occurred, room = ARGV[i], ARGV[i + 1]
  last = math.max(last + 1, tonumber(occurred))
  local seq = int(last)
  local key = event_key(seq)
  redis.call('HSET', key, 'event', ARGV[i + 2], 'room', room, 'status', 'pending',
    'attempts', '0', 'next_attempt', occurred)
  redis.call('PEXPIRE', key, ttl)
  redis.call('ZADD', prefix .. 'events', seq, seq)
  redis.call('ZADD', prefix .. 'events:occurred', occurred, seq)
  redis.call('ZADD', room_key(room), seq, seq)
  redis.call('PEXPIRE', room_key(room), ttl)
  rooms[room] = true
  out[#out + 1] = seq
end
redis.call('SET', sequence_key, int(last), 'PX', ttl)
for room in pairs(rooms) do reschedule(room) end
for _, key in ipairs({'events', 'events:occurred', 'events:due'}) do
  redis.call('PEXPIRE', prefix .. key, ttl)
end
return out
"""
)

# ARGV: prefix, now us, limit (0: none), claimed until us, claimant, rooms to scan.
DUE = (
    COMMON
    + """
local now, limit, claimed_until, claimant = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local heads = {}
for _, room in ipairs(redis.call('ZRANGEBYSCORE', due_key, '-inf', now, 'LIMIT', 0, ARGV[6])) do
  reschedule(room)
  local head = redis.call('ZRANGE', room_key(room), 0, 0)[1]
  local at = tonumber(redis.call('ZSCORE', due_key, room))
  if head and at and at <= tonumber(now) then
    heads[#heads + 1] = {tonumber(head), head, room}
  end
end
table.sort(heads, function(a, b) return a[1] < b[1] end)
local out = {}
for i, head in ipairs(heads) do
  if limit > 0 and i > limit then break end
  redis.call('HSET', event_key(head[2]), 'claimed_by', claimant, 'claimed_until', claimed_until)
  redis.call('ZADD', due_key, claimed_until, head[3])
  local row = fields(head[2])
  table.insert(row, 1, head[2])
  out[#out + 1] = row
end
return out
"""
)

# ARGV: prefix, n, delivered at (ISO 8601).
DELIVERED = (
    COMMON
    + """
local key = event_key(ARGV[2])
local f = redis.call('HMGET', key, 'status', 'room')
if not f[1] then return 0 end
redis.call('HINCRBY', key, 'attempts', 1)
-- A second node's overlapping attempt is counted; the first delivery stands.
if f[1] ~= 'delivered' then
  redis.call('HSET', key, 'status', 'delivered', 'delivered_at', ARGV[3], 'next_attempt', '')
  redis.call('HDEL', key, 'last_error')
end
redis.call('HDEL', key, 'claimed_by', 'claimed_until')
redis.call('ZREM', room_key(f[2]), ARGV[2])
reschedule(f[2])
return 1
"""
)

# ARGV: prefix, n, error, retry at us ('' gives up), now us, claimant.
ATTEMPT_FAILED = (
    COMMON
    + """
local key = event_key(ARGV[2])
local f = redis.call('HMGET', key, 'status', 'room', 'claimed_by', 'claimed_until')
if f[1] ~= 'pending' then return 0 end
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'last_error', ARGV[3])
if f[3] and f[3] ~= ARGV[6] and (tonumber(f[4]) or 0) > tonumber(ARGV[5]) then
  -- Our claim lapsed and another node is attempting it: its outcome decides.
  return 1
end
redis.call('HDEL', key, 'claimed_by', 'claimed_until')
if ARGV[4] == '' then
  redis.call('HSET', key, 'status', 'failed', 'next_attempt', '')
  redis.call('ZREM', room_key(f[2]), ARGV[2])
else
  redis.call('HSET', key, 'next_attempt', ARGV[4])
end
reschedule(f[2])
return 1
"""
)

# ARGV: prefix, n, claimant.
RELEASE = (
    COMMON
    + """
local key = event_key(ARGV[2])
local f = redis.call('HMGET', key, 'claimed_by', 'room')
if f[1] ~= ARGV[3] then return 0 end
redis.call('HDEL', key, 'claimed_by', 'claimed_until')
reschedule(f[2])
return 1
"""
)

# ARGV: prefix, before us (exclusive), batch size.
PURGE = (
    COMMON
    + """
local occurred_key = prefix .. 'events:occurred'
local seqs = redis.call('ZRANGEBYSCORE', occurred_key, '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
local rooms = {}
for _, seq in ipairs(seqs) do
  local room = redis.call('HGET', event_key(seq), 'room')
  redis.call('DEL', event_key(seq))
  redis.call('ZREM', prefix .. 'events', seq)
  redis.call('ZREM', occurred_key, seq)
  if room then
    redis.call('ZREM', room_key(room), seq)
    rooms[room] = true
  end
end
for room in pairs(rooms) do reschedule(room) end
return #seqs
"""
)
