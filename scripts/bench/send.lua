-- wrk script: every request sends a new message (unique client_msg_id) into one conversation.
-- Needs DUET_TOKEN and DUET_CONVERSATION in the environment (send.sh sets them).
local token = os.getenv("DUET_TOKEN")
local conversation = os.getenv("DUET_CONVERSATION")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("prefix", "wrk" .. threads .. "-" .. math.random(1, 1000000000))
end

local counter = 0
wrk.method = "POST"
wrk.path = "/v1/conversations/" .. conversation .. "/messages"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer " .. token

request = function()
  counter = counter + 1
  local body = string.format('{"client_msg_id":"%s-%d","body":"message number %d"}', prefix, counter, counter)
  return wrk.format(nil, nil, nil, body)
end

response = function(status)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
