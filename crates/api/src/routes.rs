//! Every route of the HTTP API, in one table: the host's router is built
//! from [`Route::ALL`] (each route given its handler by an exhaustive
//! match), and the OpenAPI document from the same table, so a route cannot
//! be served without being described, nor described without being served.

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// Its name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Which credentials a route takes (the host's `auth::Scope`, and routes
/// that take none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The webhook token (Alertmanager's `http_config`).
    Webhook,
    /// The operator token: routes that change state.
    Operator,
    /// The read token (or the operator token): read-only routes.
    Read,
    /// No token: the route holds no data (the console page, this API's
    /// description). Host and origin are still the guard's.
    Open,
}

impl Access {
    /// Its name in the document (`x-autoheal-scope`) and the reference page.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Webhook => "webhook",
            Access::Operator => "operator",
            Access::Read => "read",
            Access::Open => "none",
        }
    }
}

/// What a route's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// None.
    Empty,
    /// JSON of this component schema; `required` false when it may be empty.
    Json {
        /// The schema's name under `components/schemas`.
        schema: &'static str,
        /// Whether a body must be sent.
        required: bool,
    },
}

/// One answer a route gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// What it means.
    pub description: &'static str,
    /// Its body.
    pub body: ReplyBody,
}

/// What an answer's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyBody {
    /// JSON of this component schema.
    Json(&'static str),
    /// Another media type, described in words.
    Other {
        /// Its media type.
        content_type: &'static str,
        /// What it holds.
        description: &'static str,
    },
}

/// A query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParam {
    /// Its name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
}

/// Every route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each is described by `summary`
pub enum Route {
    Alert,
    AckGet,
    AckPost,
    PluginsReload,
    PluginTest,
    AdminEnabled,
    AdminDryRun,
    Approve,
    Deny,
    Status,
    Audit,
    Approvals,
    Pauses,
    Pause,
    Resume,
    Events,
    Metrics,
    Vision,
    AuthMe,
    Console,
    OpenApi,
    SignIn,
    SignInCallback,
    SignOut,
    Session,
    CliToken,
}

const ERROR: ReplyBody = ReplyBody::Json("ErrorAnswer");

const fn ok(schema: &'static str) -> Reply {
    Reply {
        status: 200,
        description: "OK",
        body: ReplyBody::Json(schema),
    }
}

const fn error(status: u16, description: &'static str) -> Reply {
    Reply {
        status,
        description,
        body: ERROR,
    }
}

const REDIRECT: Reply = Reply {
    status: 302,
    description: "Found: `Location` is where the browser goes next.",
    body: ReplyBody::Other {
        content_type: "text/plain",
        description: "Empty.",
    },
};
const NO_SIGN_IN: Reply = error(404, "Sign-in is not configured (no `[auth.oidc]`).");
const BAD_REQUEST: Reply = error(400, "The request is malformed; `error` says how.");
const STARTING: Reply = error(
    503,
    "The host is still loading its plugins (`Retry-After`), or a dependency is unavailable.",
);

impl Route {
    /// Every route, in the order the reference lists them.
    pub const ALL: [Route; 26] = [
        Route::Status,
        Route::Alert,
        Route::Audit,
        Route::Events,
        Route::Metrics,
        Route::Vision,
        Route::Approvals,
        Route::Approve,
        Route::Deny,
        Route::Pauses,
        Route::Pause,
        Route::Resume,
        Route::AckGet,
        Route::AckPost,
        Route::AdminEnabled,
        Route::AdminDryRun,
        Route::PluginsReload,
        Route::PluginTest,
        Route::AuthMe,
        Route::Console,
        Route::OpenApi,
        Route::SignIn,
        Route::SignInCallback,
        Route::Session,
        Route::SignOut,
        Route::CliToken,
    ];

    /// Its method.
    pub fn method(self) -> Method {
        match self {
            Route::Alert
            | Route::AckPost
            | Route::PluginsReload
            | Route::PluginTest
            | Route::AdminEnabled
            | Route::AdminDryRun
            | Route::Approve
            | Route::Deny
            | Route::Pause
            | Route::SignOut
            | Route::CliToken => Method::Post,
            Route::Resume => Method::Delete,
            Route::AckGet
            | Route::Status
            | Route::Audit
            | Route::Approvals
            | Route::Pauses
            | Route::Events
            | Route::Metrics
            | Route::Vision
            | Route::AuthMe
            | Route::Console
            | Route::OpenApi
            | Route::SignIn
            | Route::SignInCallback
            | Route::Session => Method::Get,
        }
    }

    /// Its path, in axum's (and OpenAPI's) `{param}` form.
    pub fn path(self) -> &'static str {
        match self {
            Route::Alert => "/alert",
            Route::AckGet | Route::AckPost => "/ack",
            Route::PluginsReload => "/plugins/reload",
            Route::PluginTest => "/plugins/{name}/test",
            Route::AdminEnabled => "/admin/enabled",
            Route::AdminDryRun => "/admin/dry-run",
            Route::Approve => "/approvals/{id}/approve",
            Route::Deny => "/approvals/{id}/deny",
            Route::Status => "/",
            Route::Audit => "/audit",
            Route::Approvals => "/approvals",
            Route::Pauses | Route::Pause => "/pauses",
            Route::Resume => "/pauses/{id}",
            Route::Events => "/events",
            Route::Metrics => "/metrics",
            Route::Vision => "/vision",
            Route::AuthMe => "/auth/me",
            Route::Console => "/console",
            Route::OpenApi => "/openapi.json",
            Route::SignIn => "/auth/login",
            Route::SignInCallback => "/auth/callback",
            Route::SignOut => "/auth/logout",
            Route::Session => "/auth/session",
            Route::CliToken => "/auth/cli-token",
        }
    }

    /// Which credentials it takes.
    pub fn access(self) -> Access {
        match self {
            Route::Alert => Access::Webhook,
            Route::AckGet
            | Route::AckPost
            | Route::PluginsReload
            | Route::PluginTest
            | Route::AdminEnabled
            | Route::AdminDryRun
            | Route::Approve
            | Route::Deny
            | Route::Pause
            | Route::Resume => Access::Operator,
            Route::Status
            | Route::Audit
            | Route::Approvals
            | Route::Pauses
            | Route::Events
            | Route::Metrics
            | Route::Vision
            | Route::AuthMe => Access::Read,
            // Sign-in holds its own credentials (the session cookie and its
            // CSRF token), checked by its handlers.
            Route::Console
            | Route::OpenApi
            | Route::SignIn
            | Route::SignInCallback
            | Route::SignOut
            | Route::Session
            | Route::CliToken => Access::Open,
        }
    }

    /// Its name in the document (`operationId`).
    pub fn operation_id(self) -> &'static str {
        match self {
            Route::Alert => "alert",
            Route::AckGet => "ack_get",
            Route::AckPost => "ack_post",
            Route::PluginsReload => "plugins_reload",
            Route::PluginTest => "plugin_test",
            Route::AdminEnabled => "admin_enabled",
            Route::AdminDryRun => "admin_dry_run",
            Route::Approve => "approve",
            Route::Deny => "deny",
            Route::Status => "status",
            Route::Audit => "audit",
            Route::Approvals => "approvals",
            Route::Pauses => "pauses",
            Route::Pause => "pause",
            Route::Resume => "resume",
            Route::Events => "events",
            Route::Metrics => "metrics",
            Route::Vision => "vision",
            Route::AuthMe => "auth_me",
            Route::Console => "console",
            Route::OpenApi => "openapi",
            Route::SignIn => "sign_in",
            Route::SignInCallback => "sign_in_callback",
            Route::SignOut => "sign_out",
            Route::Session => "session",
            Route::CliToken => "cli_token",
        }
    }

    /// What it does, in a line.
    pub fn summary(self) -> &'static str {
        match self {
            Route::Alert => "Alertmanager's webhook: decide (and act on) each alert.",
            Route::AckGet => "Silence alerts in Alertmanager (the original system's query form).",
            Route::AckPost => "Silence alerts in Alertmanager.",
            Route::PluginsReload => "Rescan the plugins directory now.",
            Route::PluginTest => "Run a loaded plugin on alerts, in dry-run, recording nothing.",
            Route::AdminEnabled => "Flip the kill switch.",
            Route::AdminDryRun => "Flip dry-run.",
            Route::Approve => "Approve a pending action: it runs.",
            Route::Deny => "Deny a pending action.",
            Route::Status => "What the host is, what it serves, and whether its engines answer.",
            Route::Audit => "The newest events of the audit trail, filtered.",
            Route::Approvals => "The actions waiting for an operator, with their previews.",
            Route::Pauses => "The active pauses: what each stops, why, by whom, until when.",
            Route::Pause => "Pause remediation for a plugin, matching alerts, or everything, for a while.",
            Route::Resume => "End a pause now (on a replica, on every replica).",
            Route::Events => "The live event stream (Server-Sent Events), resumable.",
            Route::Metrics => "Prometheus metrics.",
            Route::Vision => "The operations view: Prometheus and Alertmanager with the host's state.",
            Route::AuthMe => {
                "Who the caller is (by its credentials) and the roles it holds, on which plugins."
            }
            Route::Console => "The operator console (one HTML page; it asks for the token itself).",
            Route::OpenApi => "This API's description (OpenAPI 3.1).",
            Route::SignIn => "Sign in: sends the browser to the OpenID provider (code flow with PKCE).",
            Route::SignInCallback => {
                "Where the provider sends the browser back: the code is exchanged, the ID token \
                 verified, the session cookie set."
            }
            Route::SignOut => {
                "Sign out: the session ends (on this host, even for a copy of the cookie). Needs `X-CSRF-Token`."
            }
            Route::Session => "Who is signed in with this browser's cookie, and the session's CSRF token.",
            Route::CliToken => {
                "Issue a personal token for the CLI (`autoheal login`), for a signed-in person. \
                 Needs `X-CSRF-Token`."
            }
        }
    }

    /// Its query parameters.
    pub fn query(self) -> &'static [QueryParam] {
        const fn q(name: &'static str, description: &'static str) -> QueryParam {
            QueryParam { name, description }
        }
        match self {
            Route::AckGet => {
                const {
                    &[
                        q(
                            "labels",
                            "Matchers (`alertname=\"X\",job=~\"a.*\"`) or a JSON object of labels.",
                        ),
                        q("duration", "How long the silence lasts (`30m` by default)."),
                        q("comment", "The silence's comment."),
                    ]
                }
            }
            Route::Audit => {
                const {
                    &[
                        q(
                            "n",
                            "How many of the newest matching events (default 100, at most 5000).",
                        ),
                        q("kind", "Only events of these kinds (repeat or comma-separate)."),
                        q("alertname", "Only events about these alerts."),
                        q(
                            "since",
                            "Only events after this unix time or duration ago (`1h`).",
                        ),
                        q("contains", "Only events whose line contains this text."),
                        q("cluster", "`true`: every replica's trail, merged (on a replica)."),
                    ]
                }
            }
            Route::Events => {
                const {
                    &[
                        q("kind", "Only events of these kinds."),
                        q("alertname", "Only events about these alerts."),
                        q(
                            "last_event_id",
                            "Resume after this event id (as the `Last-Event-ID` header).",
                        ),
                        q(
                            "access_token",
                            "The read token, for an `EventSource` that cannot send headers.",
                        ),
                    ]
                }
            }
            Route::Vision => const { &[q("range", "The trends' range (`6h` by default).")] },
            Route::SignInCallback => {
                const {
                    &[
                        q("code", "The authorization code."),
                        q(
                            "state",
                            "The state sent with the sign-in (checked against its cookie).",
                        ),
                        q("error", "The provider's error, when it refused."),
                        q("error_description", "The provider's words for it."),
                    ]
                }
            }
            _ => const { &[] },
        }
    }

    /// Its request body.
    pub fn request(self) -> RequestBody {
        let json = |schema, required| RequestBody::Json { schema, required };
        match self {
            Route::Alert => json("WebhookPayload", true),
            Route::AckPost => json("AckRequest", true),
            Route::PluginTest => json("WebhookPayload", true),
            Route::AdminEnabled => json("EnabledRequest", true),
            Route::AdminDryRun => json("DryRunRequest", true),
            Route::Approve | Route::Deny => json("ApprovalAnswerRequest", false),
            Route::Pause => json("PauseRequest", true),
            Route::Resume => json("ResumeRequest", false),
            _ => RequestBody::Empty,
        }
    }

    /// The answers it gives (besides the guard's 401, 403 and 421 of
    /// every route that takes a token).
    pub fn replies(self) -> &'static [Reply] {
        match self {
            Route::Alert => {
                const {
                    &[
                        ok("AlertAnswer"),
                        BAD_REQUEST,
                        error(413, "The body is larger than `max_body_bytes`."),
                        error(422, "Not a webhook payload, or an alert past the size bounds."),
                        error(
                            503,
                            "Starting, busy (`max_concurrent_webhooks`) or the trail cannot be written: \
                     nothing was done. Or an alert found no room (`overloaded`, in the trail): the \
                     others were decided. Either way, retried by Alertmanager.",
                        ),
                    ]
                }
            }
            Route::AckGet | Route::AckPost => {
                const {
                    &[
                        ok("AckAnswer"),
                        BAD_REQUEST,
                        error(502, "Alertmanager did not create the silence."),
                    ]
                }
            }
            Route::PluginsReload => {
                const {
                    &[
                        ok("ReloadSummary"),
                        error(500, "The plugins directory cannot be read."),
                    ]
                }
            }
            Route::PluginTest => {
                const {
                    &[
                        ok("TrialAnswer"),
                        BAD_REQUEST,
                        error(404, "No plugin of that name is loaded."),
                    ]
                }
            }
            Route::AdminEnabled | Route::AdminDryRun => {
                const {
                    &[
                        ok("SwitchesAnswer"),
                        BAD_REQUEST,
                        error(409, "Refused by the real-mode interlock."),
                        error(500, "The switches cannot be saved."),
                    ]
                }
            }
            Route::Approve | Route::Deny => {
                const {
                    &[
                        ok("ApprovalAnswer"),
                        Reply {
                            status: 202,
                            description: "Forwarded to the replica it waits on.",
                            body: ReplyBody::Json("ApprovalAnswer"),
                        },
                        BAD_REQUEST,
                        error(404, "No approval of that id is pending."),
                        Reply {
                            status: 409,
                            description: "It has ended (`ErrorAnswer`), or it ended by this answer: \
                                  expired or stale (`ApprovalAnswer` with `error`).",
                            body: ReplyBody::Json("ApprovalAnswer"),
                        },
                        STARTING,
                    ]
                }
            }
            Route::Status => {
                const {
                    &[
                        ok("StatusAnswer"),
                        Reply {
                            status: 503,
                            description: "Still loading its plugins: the same body, `status: starting`, \
                                  with `error` (and `Retry-After`).",
                            body: ReplyBody::Json("StatusAnswer"),
                        },
                    ]
                }
            }
            Route::Audit => {
                const {
                    &[
                        ok("AuditAnswer"),
                        BAD_REQUEST,
                        error(500, "The trail cannot be read."),
                        error(503, "The cluster's replicas cannot be listed."),
                    ]
                }
            }
            Route::Approvals => const { &[ok("ApprovalsAnswer")] },
            Route::AuthMe => const { &[ok("MeAnswer")] },
            Route::Pauses => const { &[ok("PausesAnswer")] },
            Route::Pause => {
                const {
                    &[
                        ok("Pause"),
                        BAD_REQUEST,
                        error(503, "The trail cannot be written: nothing was paused."),
                    ]
                }
            }
            Route::Resume => {
                const {
                    &[
                        ok("Pause"),
                        BAD_REQUEST,
                        error(404, "No active pause has that id."),
                        error(503, "The trail cannot be written: the pause goes on."),
                    ]
                }
            }
            Route::Events => {
                const {
                    &[
                        Reply {
                            status: 200,
                            description: "OK",
                            body: ReplyBody::Other {
                                content_type: "text/event-stream",
                                description: "One SSE message per event: `id` its id, `event` its kind, \
                                      `data` the event as JSON (as in `GET /audit`).",
                            },
                        },
                        BAD_REQUEST,
                        error(503, "Too many subscribers (`max_sse_subscribers`)."),
                    ]
                }
            }
            Route::Metrics => {
                const {
                    &[Reply {
                        status: 200,
                        description: "OK",
                        body: ReplyBody::Other {
                            content_type: "text/plain; version=0.0.4",
                            description: "Prometheus's text exposition format.",
                        },
                    }]
                }
            }
            Route::Vision => {
                const {
                    &[
                        Reply {
                            status: 200,
                            description: "OK: always, a source that is down is reported inside.",
                            body: ReplyBody::Json("VisionReport"),
                        },
                        BAD_REQUEST,
                    ]
                }
            }
            Route::Console => {
                const {
                    &[Reply {
                        status: 200,
                        description: "OK",
                        body: ReplyBody::Other {
                            content_type: "text/html",
                            description: "The console page.",
                        },
                    }]
                }
            }
            Route::OpenApi => {
                const {
                    &[Reply {
                        status: 200,
                        description: "OK",
                        body: ReplyBody::Other {
                            content_type: "application/json",
                            description: "This document.",
                        },
                    }]
                }
            }
            Route::SignIn => {
                const {
                    &[
                        REDIRECT,
                        NO_SIGN_IN,
                        error(503, "The provider's discovery document has not been fetched yet."),
                    ]
                }
            }
            Route::SignInCallback => {
                const {
                    &[
                        REDIRECT,
                        error(
                            400,
                            "No sign-in under way in this browser, or its state does not match: sign in again.",
                        ),
                        error(401, "The provider refused, or its ID token did not verify."),
                        NO_SIGN_IN,
                        error(502, "The provider could not be reached to exchange the code."),
                    ]
                }
            }
            Route::SignOut => {
                const {
                    &[
                        ok("SignedOutAnswer"),
                        error(403, "`X-CSRF-Token` is missing or is not the session's (`csrf`)."),
                        NO_SIGN_IN,
                    ]
                }
            }
            Route::Session => {
                const {
                    &[
                        ok("SessionAnswer"),
                        error(401, "No session, or it expired or was signed out."),
                        NO_SIGN_IN,
                    ]
                }
            }
            Route::CliToken => {
                const {
                    &[
                        ok("CliTokenAnswer"),
                        error(401, "No session, or it expired or was signed out."),
                        error(403, "`X-CSRF-Token` is missing or is not the session's (`csrf`)."),
                        NO_SIGN_IN,
                    ]
                }
            }
        }
    }
}
