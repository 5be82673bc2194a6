import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { paramsFrom } from '../config/index.js';
import { Resolver, splitAddressList, splitExtension, stripExtension } from './index.js';

const BASE = 'compatibility_level = 3.6\nmyhostname = mx.example.com\nmydomain = example.com\ninet_interfaces = loopback-only\n';

function resolver(extra = '', interfaceAddresses: readonly string[] = ['127.0.0.1', '::1', '192.0.2.10']): Resolver {
  return new Resolver(paramsFrom(BASE + extra), { interfaceAddresses });
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('resolve: address classes (trivial-rewrite)', () => {
  test('resolve: mydestination (default $myhostname, localhost.$mydomain, localhost) is the local class via local:$myhostname', () => {
    const r = resolver();
    for (const a of ['u@mx.example.com', 'u@localhost.example.com', 'u@LOCALHOST', 'u@mx.example.com.']) {
      const res = r.resolve(a);
      assert.equal(res.addressClass, 'local', a);
      assert.equal(res.transport, 'local');
      assert.equal(res.nexthop, 'mx.example.com');
    }
  });

  test('resolve: a bare user gets @$myorigin and is local', () => {
    const res = resolver().resolve('root');
    assert.deepEqual(res, { address: 'root@mx.example.com', addressClass: 'local', transport: 'local', nexthop: 'mx.example.com' });
    const o = resolver('myorigin = example.com\nmydestination = $myhostname, $mydomain\n').resolve('postmaster');
    assert.equal(o.address, 'postmaster@example.com');
    assert.equal(o.addressClass, 'local');
  });

  test('resolve: user@[ip] literals of our interfaces are local, others go to default_transport', () => {
    const r = resolver();
    assert.equal(r.resolve('u@[127.0.0.1]').addressClass, 'local');
    assert.equal(r.resolve('u@[192.0.2.10]').addressClass, 'local');
    assert.equal(r.resolve('u@[IPv6:::1]').addressClass, 'local');
    const other = r.resolve('u@[198.51.100.7]');
    assert.equal(other.addressClass, 'default');
    assert.equal(other.transport, 'smtp');
    assert.equal(other.nexthop, '[198.51.100.7]');
    assert.equal(resolver('proxy_interfaces = 203.0.113.5\n').resolve('u@[203.0.113.5]').addressClass, 'local');
  });

  test('resolve: bad address syntax goes to error:5.1.3', () => {
    const r = resolver();
    for (const a of ['u@[300.1.1.1]', 'u@-bad-.example', 'u@1.2.3.4']) {
      const res = r.resolve(a);
      assert.equal(res.transport, 'error', a);
      assert.equal(res.nexthop, '5.1.3 bad address syntax');
    }
    // resolve_numeric_domain = yes treats user@1.2.3.4 as user@[1.2.3.4].
    const num = resolver('resolve_numeric_domain = yes\n').resolve('u@127.0.0.1');
    assert.equal(num.addressClass, 'local');
    assert.equal(num.address, 'u@[127.0.0.1]');
  });

  test('resolve: virtual_mailbox_domains → virtual, relay_domains → relay, else smtp with the domain as nexthop', () => {
    const r = resolver('virtual_mailbox_domains = v.example\nrelay_domains = r.example\n');
    assert.deepEqual(r.resolve('a@v.example'), { address: 'a@v.example', addressClass: 'virtual', transport: 'virtual', nexthop: 'v.example' });
    assert.deepEqual(r.resolve('a@r.example'), { address: 'a@r.example', addressClass: 'relay', transport: 'relay', nexthop: 'r.example' });
    // relay_domains is in parent_domain_matches_subdomains: subdomains match too.
    assert.equal(r.resolve('a@sub.r.example').addressClass, 'relay');
    assert.deepEqual(r.resolve('a@elsewhere.example'), { address: 'a@elsewhere.example', addressClass: 'default', transport: 'smtp', nexthop: 'elsewhere.example' });
  });

  test('resolve: relayhost overrides the nexthop of relay and default classes only', () => {
    const r = resolver('relayhost = [smart.example]:587\nrelay_domains = r.example\nvirtual_mailbox_domains = v.example\n');
    assert.equal(r.resolve('a@r.example').nexthop, '[smart.example]:587');
    assert.equal(r.resolve('a@x.example').nexthop, '[smart.example]:587');
    assert.equal(r.resolve('a@v.example').nexthop, 'v.example');
    assert.equal(r.resolve('a@mx.example.com').nexthop, 'mx.example.com');
  });

  test('resolve: a transport:nexthop parameter value sets the nexthop', () => {
    const r = resolver('default_transport = smtp:[gw.example]:2525\nvirtual_transport = lmtp:unix:private/dovecot-lmtp\nvirtual_mailbox_domains = v.example\n');
    assert.deepEqual(r.resolve('a@x.example'), { address: 'a@x.example', addressClass: 'default', transport: 'smtp', nexthop: '[gw.example]:2525' });
    assert.equal(r.resolve('a@v.example').nexthop, 'unix:private/dovecot-lmtp');
  });

  test('resolve: virtual alias domain without an alias is error:5.1.1 User unknown in virtual alias table', () => {
    const r = resolver('virtual_alias_domains = a.example\n');
    assert.deepEqual(r.resolve('nobody@a.example'), { address: 'nobody@a.example', addressClass: 'alias', transport: 'error', nexthop: '5.1.1 User unknown in virtual alias table' });
    const quiet = resolver('virtual_alias_domains = a.example\nshow_user_unknown_table_name = no\n');
    assert.equal(quiet.resolve('nobody@a.example').nexthop, '5.1.1 User unknown');
  });

  test('resolve: mydestination with .domain, !negation and a table', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-resolve-'));
    dirs.push(dir);
    writeFileSync(path.join(dir, 'dests'), 'tab.example OK\n.deep.example OK\n');
    const r = resolver(`mydestination = !no.sub.example, .sub.example, texthash:${dir}/dests\n`);
    assert.equal(r.resolve('u@a.sub.example').addressClass, 'local');
    assert.equal(r.resolve('u@sub.example').addressClass, 'default');
    assert.equal(r.resolve('u@no.sub.example').addressClass, 'default');
    assert.equal(r.resolve('u@tab.example').addressClass, 'local');
    assert.equal(r.resolve('u@x.tab.example').addressClass, 'default');
    assert.equal(r.resolve('u@x.deep.example').addressClass, 'local');
  });

  test('resolve: percent hack and bang paths are rewritten', () => {
    const r = resolver();
    assert.equal(r.resolve('user%remote.example@mx.example.com').address, 'user@remote.example');
    assert.equal(r.resolve('remote.example!user').address, 'user@remote.example');
    assert.equal(resolver('allow_percent_hack = no\n').resolve('user%remote.example@mx.example.com').address, 'user%remote.example@mx.example.com');
  });
});

describe('resolve: transport_maps (transport(5))', () => {
  const maps =
    'transport_maps = inline:{ {full+ext@t.example = smtp:[full]:25}, {user@t.example = local:}, {t.example = error:5.7.1 go away}, {.sub.example = smtp:[sub]}, {other.example = :[kept]:26}, {drop.example = discard:dropped it}, {relay.example = relay}, {retry.example = retry:} }\nrecipient_delimiter = +\n';

  test('resolve: full address, address without extension, domain, then .parent domains', () => {
    const r = resolver(maps);
    assert.deepEqual(r.resolve('full+ext@t.example'), { address: 'full+ext@t.example', addressClass: 'default', transport: 'smtp', nexthop: '[full]:25' });
    const noext = r.resolve('user+x@t.example');
    assert.equal(noext.transport, 'local');
    assert.equal(noext.nexthop, 't.example', '`local:` with an empty nexthop resets it to the recipient domain');
    assert.deepEqual(r.resolve('x@t.example'), { address: 'x@t.example', addressClass: 'default', transport: 'error', nexthop: '5.7.1 go away' });
    assert.equal(r.resolve('x@a.sub.example').nexthop, '[sub]');
    assert.equal(r.resolve('x@b.a.sub.example').nexthop, '[sub]');
    assert.equal(r.resolve('x@sub.example').transport, 'smtp');
    assert.equal(r.resolve('x@sub.example').nexthop, 'sub.example', 'the .parent form does not match the domain itself');
  });

  test('resolve: `:nexthop` keeps the transport; `transport` alone resets the nexthop; error/retry get "Address is undeliverable"', () => {
    const r = resolver(`${maps}relayhost = [smart]\n`);
    assert.deepEqual(r.resolve('x@other.example'), { address: 'x@other.example', addressClass: 'default', transport: 'smtp', nexthop: '[kept]:26' });
    assert.deepEqual(r.resolve('x@relay.example'), { address: 'x@relay.example', addressClass: 'default', transport: 'relay', nexthop: 'relay.example' });
    assert.equal(r.resolve('x@retry.example').nexthop, 'Address is undeliverable');
    assert.deepEqual(r.resolve('x@drop.example'), { address: 'x@drop.example', addressClass: 'default', transport: 'discard', nexthop: 'dropped it' });
  });

  test('resolve: the * wildcard applies when nothing else matches, and transport_maps do not override the alias class', () => {
    const r = resolver('transport_maps = inline:{ {* = smtp:[catchall]}, {mine.example = local:} }\nvirtual_alias_domains = a.example\n');
    assert.equal(r.resolve('u@anything.example').nexthop, '[catchall]');
    assert.equal(r.resolve('u@mine.example').transport, 'local');
    assert.equal(r.resolve('u@a.example').transport, 'error');
  });

  test('resolve: regexp transport tables see only the full address', () => {
    const r = resolver('transport_maps = regexp:{ {/^x@/ smtp:[rx]} , {/^t\\.example$$/ error:never} }\n');
    assert.equal(r.resolve('x@t.example').nexthop, '[rx]');
    assert.equal(r.resolve('y@t.example').transport, 'smtp');
    assert.equal(r.resolve('y@t.example').nexthop, 't.example');
  });
});

describe('resolve: virtual alias expansion', () => {
  test('resolve: recursive expansion, an address may expand to itself once, duplicates dropped', () => {
    const r = resolver(
      'virtual_alias_maps = inline:{ {list@a.example = one@a.example, two@b.example, one@a.example}, {one@a.example = one@a.example, copy@c.example}, {two@b.example = final@d.example} }\n',
    );
    const e = r.expandVirtual('list@a.example');
    assert.deepEqual(e, { ok: true, addresses: ['one@a.example', 'final@d.example', 'copy@c.example'] });
    assert.deepEqual(r.expandVirtual('nobody@a.example'), { ok: true, addresses: ['nobody@a.example'] });
  });

  test('resolve: an alias loop is an expansion error (4.6.0), with Postfix warning', () => {
    const warnings: string[] = [];
    const r = new Resolver(paramsFrom(`${BASE}virtual_alias_maps = inline:{ {a@x.example = b@x.example}, {b@x.example = a@x.example} }\nvirtual_alias_recursion_limit = 20\n`), {
      interfaceAddresses: [],
      warn: (w) => warnings.push(w),
    });
    assert.deepEqual(r.expandVirtual('a@x.example'), { ok: false, dsn: '4.6.0', reason: 'Alias expansion error' });
    assert.match(warnings[0]!, /^unreasonable virtual_alias_maps map nesting for a@x\.example/);
  });

  test('resolve: lookup order user+ext@domain, user@domain, user (local domains), @domain; extension propagated', () => {
    const r = resolver(
      'recipient_delimiter = +\nvirtual_alias_maps = inline:{ {exact+tag@a.example = exact-hit@z.example}, {user@a.example = u@z.example}, {@a.example = catch@z.example}, {postmaster = admin@z.example}, {bare = bare@z.example} }\n',
    );
    assert.deepEqual(r.expandVirtual('exact+tag@a.example'), { ok: true, addresses: ['exact-hit@z.example'] });
    assert.deepEqual(r.expandVirtual('user+tag@a.example'), { ok: true, addresses: ['u+tag@z.example'] });
    assert.deepEqual(r.expandVirtual('other@a.example'), { ok: true, addresses: ['catch@z.example'] });
    // user without domain matches only for local domains ($myorigin, $mydestination).
    assert.deepEqual(r.expandVirtual('postmaster@mx.example.com'), { ok: true, addresses: ['admin@z.example'] });
    assert.deepEqual(r.expandVirtual('postmaster'), { ok: true, addresses: ['admin@z.example'] });
    assert.deepEqual(r.expandVirtual('bare@elsewhere.example'), { ok: true, addresses: ['bare@elsewhere.example'] });
    const noProp = resolver('recipient_delimiter = +\npropagate_unmatched_extensions = canonical\nvirtual_alias_maps = inline:{ {user@a.example = u@z.example} }\n');
    assert.deepEqual(noProp.expandVirtual('user+tag@a.example'), { ok: true, addresses: ['u@z.example'] });
  });

  test('resolve: results without a domain get @$myorigin', () => {
    const r = resolver('virtual_alias_maps = inline:{ {x@a.example = localuser} }\n');
    assert.deepEqual(r.expandVirtual('x@a.example'), { ok: true, addresses: ['localuser@mx.example.com'] });
  });
});

describe('resolve: address helpers', () => {
  const o = { recipient_delimiter: '+-', owner_request_special: true, double_bounce_sender: 'double-bounce' };
  test('resolve: extensions split at the first delimiter, with Postfix exceptions', () => {
    assert.deepEqual(splitExtension('user+foo+bar', o), { base: 'user', extension: '+foo+bar' });
    assert.deepEqual(splitExtension('user-foo', o), { base: 'user', extension: '-foo' });
    assert.deepEqual(splitExtension('owner-list', o), { base: 'owner-list', extension: null });
    assert.deepEqual(splitExtension('list-request', o), { base: 'list-request', extension: null });
    assert.deepEqual(splitExtension('double-bounce', o), { base: 'double-bounce', extension: null });
    assert.deepEqual(splitExtension('+foo', o), { base: '+foo', extension: null });
    assert.equal(stripExtension('a+b@c', o), 'a@c');
    assert.equal(stripExtension('a@c', o), null);
  });
  test('resolve: lookup results split on commas and white space, quotes kept', () => {
    assert.deepEqual(splitAddressList('a@b, c@d\te@f,,<g@h>'), ['a@b', 'c@d', 'e@f', 'g@h']);
    assert.deepEqual(splitAddressList('"x, y"@b c@d'), ['"x, y"@b', 'c@d']);
  });
});
