-- wrk script: every request reads the newest page of one conversation's history.
-- Needs DUET_TOKEN and DUET_CONVERSATION in the environment.
local token = os.getenv("DUET_TOKEN")
local conversation = os.getenv("DUET_CONVERSATION")
wrk.method = "GET"
wrk.path = "/v1/conversations/" .. conversation .. "/messages?limit=50"
wrk.headers["authorization"] = "Bearer " .. token

response = function(status)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
