import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { describe, test } from 'node:test';
import { paramsFrom } from '../config/index.js';
import type { Config, MasterService } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { BindError, bind, interfaceAddresses, parseInetProtocols, serviceAddresses, strerror } from './listen.js';

function configFrom(mainCf: string): Config {
  const params = paramsFrom(mainCf, '/etc/postern/main.cf');
  return {
    configDir: '/etc/postern',
    mainCfPath: '/etc/postern/main.cf',
    masterCfPath: '/etc/postern/master.cf',
    params,
    settings: new Map(),
    services: [],
    warnings: [],
  };
}

function service(config: Config, name: string, host: string | null, port: number): MasterService {
  return {
    name,
    type: 'inet',
    private: false,
    unpriv: true,
    chroot: false,
    wakeup: '0',
    maxproc: 100,
    command: 'smtpd',
    args: [],
    argv: [],
    fields: ['n', '-', 'n', '-', '-'],
    overrides: new Map(),
    file: '/etc/postern/master.cf',
    line: 7,
    listen: { host, port },
    params: config.params,
  };
}

const noDns = async (): Promise<never> => {
  throw new Error('test must not resolve');
};

describe('master/listen: inet_interfaces × inet_protocols', () => {
  const cases: [string, string[]][] = [
    ['inet_interfaces = all\ninet_protocols = all', ['0.0.0.0/4', '::/6']],
    ['inet_interfaces = all\ninet_protocols = ipv4', ['0.0.0.0/4']],
    ['inet_interfaces = all\ninet_protocols = ipv6', ['::/6']],
    ['inet_interfaces = loopback-only\ninet_protocols = all', ['127.0.0.1/4', '::1/6']],
    ['inet_interfaces = loopback-only\ninet_protocols = ipv6', ['::1/6']],
    ['inet_interfaces = 127.0.0.1, [::1]\ninet_protocols = all', ['127.0.0.1/4', '::1/6']],
    ['inet_interfaces = 127.0.0.1 ::1 127.0.0.1\ninet_protocols = ipv4, ipv6', ['127.0.0.1/4', '::1/6']],
    ['inet_interfaces = 192.0.2.1, [2001:db8::1]\ninet_protocols = ipv4', ['192.0.2.1/4']],
    ['inet_protocols = all', ['0.0.0.0/4', '::/6']],
  ];
  for (const [mainCf, want] of cases) {
    test(`master: ${mainCf.replaceAll('\n', '; ')} → ${want.join(' ')}`, async () => {
      const got = await interfaceAddresses(configFrom(mainCf), noDns);
      assert.deepEqual(
        got.map((a) => `${a.address}/${a.family}`),
        want,
      );
    });
  }

  test('master: a host name in inet_interfaces is resolved once and filtered by family', async () => {
    const resolve = async (host: string) => {
      assert.equal(host, 'mx.example.test');
      return [
        { address: '192.0.2.7', family: 4 as const },
        { address: '2001:db8::7', family: 6 as const },
      ];
    };
    const got = await interfaceAddresses(configFrom('inet_interfaces = mx.example.test\ninet_protocols = ipv6'), resolve);
    assert.deepEqual(got, [{ address: '2001:db8::7', family: 6 }]);
  });

  test('master: an unresolvable inet_interfaces name is a config error', async () => {
    const resolve = async () => [];
    await assert.rejects(interfaceAddresses(configFrom('inet_interfaces = nowhere.example.test'), resolve), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /inet_interfaces: host not found: nowhere\.example\.test/);
      return true;
    });
  });

  test('master: inet_protocols rejects an unknown family with what is allowed', () => {
    assert.throws(() => parseInetProtocols(['ipv5']), /invalid inet_protocols value "ipv5": expected all, ipv4 or ipv6/);
    assert.deepEqual(parseInetProtocols(['IPv4']), { ipv4: true, ipv6: false });
  });
});

describe('master/listen: service addresses', () => {
  test('master: a service without host listens on every interface address with its port', async () => {
    const c = configFrom('inet_interfaces = loopback-only');
    const got = await serviceAddresses(service(c, 'smtp', null, 25), c, noDns);
    assert.deepEqual(got, [
      { address: '127.0.0.1', family: 4, port: 25 },
      { address: '::1', family: 6, port: 25 },
    ]);
  });

  test('master: [::1]:2525 and ::1 host forms bind IPv6 only, 127.0.0.1:2525 IPv4 only, whatever inet_interfaces says', async () => {
    const c = configFrom('inet_interfaces = all');
    assert.deepEqual(await serviceAddresses(service(c, '[::1]:2525', '[::1]', 2525), c, noDns), [{ address: '::1', family: 6, port: 2525 }]);
    assert.deepEqual(await serviceAddresses(service(c, '[::1]:2525', '::1', 2525), c, noDns), [{ address: '::1', family: 6, port: 2525 }]);
    assert.deepEqual(await serviceAddresses(service(c, '127.0.0.1:2525', '127.0.0.1', 2525), c, noDns), [
      { address: '127.0.0.1', family: 4, port: 2525 },
    ]);
  });

  test('master: a service address of a family inet_protocols disables is a config error naming the master.cf line', async () => {
    const c = configFrom('inet_protocols = ipv6');
    await assert.rejects(serviceAddresses(service(c, '127.0.0.1:2525', '127.0.0.1', 2525), c, noDns), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, '/etc/postern/master.cf, line 7: bad hostname or network address: 127.0.0.1:2525 (not enabled by inet_protocols = ipv6)');
      return true;
    });
  });

  test('master: non-inet services have no listen addresses', async () => {
    const c = configFrom('');
    const s = { ...service(c, 'pickup', null, 0), type: 'unix' as const, listen: null };
    assert.deepEqual(await serviceAddresses(s, c, noDns), []);
  });
});

describe('master/listen: bind', () => {
  test('master: a busy port fails with Postfix\'s "bind ADDR port N: Address already in use"', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      await assert.rejects(bind({ address: '127.0.0.1', family: 4, port }, () => {}), (err: unknown) => {
        assert.ok(err instanceof BindError);
        assert.equal(err.message, `bind 127.0.0.1 port ${port}: Address already in use`);
        assert.equal(err.errno, 'EADDRINUSE');
        return true;
      });
    } finally {
      holder.close();
    }
  });

  test('master: strerror texts are glibc\'s, as Postfix prints %m', () => {
    assert.equal(strerror('EACCES'), 'Permission denied');
    assert.equal(strerror('EADDRNOTAVAIL'), 'Cannot assign requested address');
    assert.equal(strerror('ECONNREFUSED'), 'Connection refused');
  });
});
