-- Copyright: zerotrust.mailstack contributors
-- GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
--
-- Dovecot passdb and userdb (driver lua) that ask the mailstack auth daemon.
-- Works with Dovecot 2.3 (Debian 12) and 2.4 (Debian 13), both built with Lua 5.4,
-- and needs lua-socket (socket.unix).
--
-- Protocol: one request line, one reply line; UTF-8, fields separated by TAB, LF-terminated.
--   AUTH <service> <user> <password> <remote_ip> <cert>  ->  OK <login> | FAIL <reason> | TEMPFAIL <reason>
--   USER <name>                                          ->  OK <login> | NOTFOUND | TEMPFAIL <reason>
-- <cert> is "valid" when Dovecot verified a client certificate against its CA, else empty.
--
-- Settings, each with the default below when Dovecot gives none:
--   socket     the daemon's unix socket
--   mail_root  homes are <mail_root>/<login>
--   uid, gid   the single virtual mail user
--   timeout    seconds to wait for the daemon (connect, send, reply)
-- Dovecot 2.4 hands them over as lua_settings { ... } of the passdb/userdb section, which
-- reach script_init(args). Dovecot 2.3 refuses extra passdb/userdb args, so there they come
-- from the environment (import_environment in dovecot.conf): MAILSTACK_AUTH_SOCKET,
-- MAILSTACK_AUTH_MAIL_ROOT, MAILSTACK_AUTH_UID, MAILSTACK_AUTH_GID, MAILSTACK_AUTH_TIMEOUT.
--
-- Failures never become success: a field with a control character is refused without
-- asking the daemon; a socket error, a timeout or an unexpected reply is a temporary
-- (internal) failure. The password is never logged.

local unix = require("socket.unix")

local settings = {
  socket = "/run/mailstack-auth/auth.sock",
  mail_root = "/var/vmail",
  uid = "5000",
  gid = "5000",
  timeout = "10",
}

for key in pairs(settings) do
  local value = os.getenv("MAILSTACK_AUTH_" .. string.upper(key))
  if value ~= nil and value ~= "" then
    settings[key] = value
  end
end

-- Dovecot 2.4 calls script_init(lua_settings); 2.3 calls it without arguments.
function script_init(args)
  if type(args) == "table" then
    for key in pairs(settings) do
      if args[key] ~= nil and tostring(args[key]) ~= "" then
        settings[key] = tostring(args[key])
      end
    end
  end
  return 0
end

local function has_control(value)
  return string.find(value, "%c") ~= nil
end

-- Ask the daemon; returns the reply fields, or nil and an error text.
local function ask(fields)
  local line = table.concat(fields, "\t") .. "\n"
  local sock, err = (unix.stream or unix)()
  if not sock then
    return nil, "socket: " .. tostring(err)
  end
  sock:settimeout(tonumber(settings.timeout) or 10)
  local ok
  ok, err = sock:connect(settings.socket)
  if not ok then
    sock:close()
    return nil, "connect " .. settings.socket .. ": " .. tostring(err)
  end
  ok, err = sock:send(line)
  if not ok then
    sock:close()
    return nil, "send: " .. tostring(err)
  end
  local reply
  reply, err = sock:receive("*l")
  sock:close()
  if not reply then
    return nil, "receive: " .. tostring(err)
  end
  local parts = {}
  for part in string.gmatch(reply .. "\t", "([^\t]*)\t") do
    parts[#parts + 1] = part
  end
  return parts
end

-- The canonical login of an OK reply, or nil when the reply is malformed.
local function login_of(reply)
  local login = reply[2]
  if #reply ~= 2 or login == nil or login == "" or has_control(login) or string.find(login, "[/ ]") then
    return nil
  end
  if login == "." or login == ".." then
    return nil
  end
  return login
end

local function describe(reply)
  -- Only the reply kind and reason go to the log, never a password.
  local text = tostring(reply[1])
  if reply[2] ~= nil then
    text = text .. " " .. tostring(reply[2])
  end
  return (string.gsub(text, "%c", "?"))
end

function auth_password_verify(request, password)
  local service = request.protocol or request.service or ""
  local user = request.user or ""
  local remote_ip = request.remote_ip or request.rip or ""
  local secret = password or ""
  local cert = ""
  if request.cert == "valid" then
    cert = "valid"
  end
  for _, value in ipairs({ service, user, secret, remote_ip }) do
    if has_control(value) then
      request:log_warning("refused: control character in the login request")
      return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "control character in request"
    end
  end
  local reply, err = ask({ "AUTH", service, user, secret, remote_ip, cert })
  if not reply then
    request:log_warning("auth daemon unavailable: " .. err)
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "auth daemon unavailable"
  end
  if reply[1] == "OK" then
    local login = login_of(reply)
    if login then
      return dovecot.auth.PASSDB_RESULT_OK, { user = login }
    end
  elseif reply[1] == "FAIL" and #reply == 2 then
    request:log_info("login refused: " .. describe(reply) .. " (cert=" .. (cert == "" and "none" or cert) .. ")")
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "refused"
  elseif reply[1] == "TEMPFAIL" and #reply == 2 then
    request:log_warning("temporary failure: " .. describe(reply))
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "temporary failure"
  end
  request:log_warning("unexpected reply from the auth daemon: " .. describe(reply))
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "unexpected reply"
end

-- Credential lookups (non-plaintext mechanisms) cannot work: the daemon never hands out
-- passwords. Only plain and login are configured, so Dovecot does not call this.
function auth_passdb_lookup(request)
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "password lookup not supported, use auth_password_verify"
end

function auth_userdb_lookup(request)
  local name = request.user or ""
  if has_control(name) then
    request:log_warning("refused: control character in the user name")
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "control character in user name"
  end
  local reply, err = ask({ "USER", name })
  if not reply then
    request:log_warning("auth daemon unavailable: " .. err)
    return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, "auth daemon unavailable"
  end
  if reply[1] == "OK" then
    local login = login_of(reply)
    if login then
      return dovecot.auth.USERDB_RESULT_OK,
        {
          user = login,
          home = settings.mail_root .. "/" .. login,
          uid = settings.uid,
          gid = settings.gid,
        }
    end
  elseif reply[1] == "NOTFOUND" and #reply == 1 then
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "unknown user"
  elseif reply[1] == "TEMPFAIL" and #reply == 2 then
    request:log_warning("temporary failure: " .. describe(reply))
    return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, "temporary failure"
  end
  request:log_warning("unexpected reply from the auth daemon: " .. describe(reply))
  return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, "unexpected reply"
end
