// A real OpenID provider for the sign-in tests (host/tests/all/oidc.rs):
// oidc-provider, a certified implementation, with its development login
// form. Two people: alice in group `sre`, bob in group `dev`. One client,
// the host under test, which must use PKCE.
//
//   node provider.mjs PORT REDIRECT_URI CLIENT_SECRET
//
// With TLS_CERT and TLS_KEY (PEM files) in the environment it serves
// https:// with that certificate instead of http://.
// Prints `listening on ISSUER` once it answers.
import { readFileSync } from "node:fs";
import https from "node:https";
import Provider from "oidc-provider";

const [port, redirectUri, clientSecret] = process.argv.slice(2);
if (!port || !redirectUri || !clientSecret) {
  console.error("usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET");
  process.exit(2);
}

const people = {
  alice: {
    sub: "alice",
    name: "Alice Liddell",
    preferred_username: "alice",
    email: "alice@example.test",
    groups: ["sre"],
  },
  bob: {
    sub: "bob",
    name: "Bob Builder",
    preferred_username: "bob",
    email: "bob@example.test",
    groups: ["dev"],
  },
};

const tls = process.env.TLS_CERT && process.env.TLS_KEY
  ? { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
  : null;
const issuer = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "autoheal",
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  // Every authorization request must carry an S256 code challenge.
  pkce: { required: () => true },
  scopes: ["openid", "profile", "email", "groups"],
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email"],
    groups: ["groups"],
  },
  // The claims of the requested scopes go into the ID token itself, as
  // Keycloak and Dex put them: the host reads them from there.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, id) =>
    people[id] && { accountId: id, claims: async () => people[id] },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["autoheal-test-provider-cookie-key"] },
});
// Unknown people (any login but alice and bob) are refused by findAccount.
const listening = () => console.log(`listening on ${issuer}`);
if (tls) {
  https.createServer(tls, provider.callback()).listen(Number(port), "127.0.0.1", listening);
} else {
  provider.listen(Number(port), "127.0.0.1", listening);
}
