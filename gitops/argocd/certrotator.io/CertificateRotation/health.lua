-- Argo CD health check for certrotator.io/CertificateRotation, and the same
-- script for CertificateRotationPolicy (its Ready and Stalled mean the same;
-- it has no Reconciling and no spec.paused, so it is Healthy or Degraded).
-- Install: argocd-cm keys resource.customizations.health.certrotator.io_CertificateRotation
-- and ..._CertificateRotationPolicy (gitops/argocd/argocd-cm-patch.yaml).
-- Written for Lua 5.1 (Argo CD's gopher-lua).
--
-- Order matters:
--   1. observedGeneration behind metadata.generation (or -1 / absent: the
--      controller has not seen this spec yet)  -> Progressing, never Healthy;
--   2. Stalled=True   -> Degraded (the run is stopped; a person must act);
--   3. Ready=True     -> Healthy (rotation Succeeded, or Plan mode planned);
--   4. spec.paused    -> Suspended;
--   5. Reconciling=True -> Progressing (planning, queued, rotating);
--   6. otherwise      -> Progressing, waiting for the controller.
local hs = {}

local function condition(conditions, t)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == t then return c end
  end
  return nil
end

local function msg(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then return c.message end
  return fallback
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then generation = obj.metadata.generation end
local status = obj.status
local observed = -1
if status ~= nil and status.observedGeneration ~= nil then observed = status.observedGeneration end

if status == nil or observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = msg(stalled, "Stalled")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = msg(ready, "Ready")
  return hs
end

if (obj.spec ~= nil and obj.spec.paused == true) or status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = msg(reconciling, "Paused")
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = msg(reconciling, "Reconciling")
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the controller to report status"
return hs
