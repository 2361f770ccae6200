#!/usr/bin/python3
"""person.py: a person in a MUC room, played by slixmpp (Debian's
python3-slixmpp), for runtime's relations tests (relations_live_test.go).

    /usr/bin/python3 person.py HOST PORT JID PASSWORD ROOM NICK

Reads one JSON command a line on stdin and answers each with one JSON line on
stdout, after the room reflected what it sent (so the answer carries the
room's stanza-id). Commands ("op"):

    send      {body}                          a plain message
    correct   {id, body}                      XEP-0308 correction of id
    reply     {to, id, body, quote}           XEP-0461 reply, with an XEP-0428
                                              fallback quote "> quote\\n"
    react     {id, reactions}                 XEP-0444 reactions
    retract   {id}                            XEP-0424 (slixmpp 1.8.3: v0.3,
                                              apply-to + fallback body)
    oob       {url, body}                     XEP-0066 attachment
    subject   {subject}                       a subject change
    last      {nick}                          sends nothing: answers {"xml"},
                                              the last message nick sent
    quit

An answer is {"id", "origin", "stanza_id", "xml"} (the reflection's). The
first line, once joined, is {"joined": true}.
"""
import asyncio
import json
import os
import sys
import uuid

import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

host, port, jid, password, room, nick = sys.argv[1:7]
port = int(port)
DEBUG = bool(os.environ.get('PERSON_DEBUG'))


class Person(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        # Plaintext on loopback: the dev servers have no TLS certificates the
        # client trusts. SCRAM-SHA-1 is chosen anyway.
        self['feature_mechanisms'].unencrypted_plain = True
        self['feature_mechanisms'].unencrypted_scram = True
        for p in ('xep_0030', 'xep_0045', 'xep_0059', 'xep_0066', 'xep_0199',
                  'xep_0308', 'xep_0359', 'xep_0424', 'xep_0428', 'xep_0444',
                  'xep_0461'):
            self.register_plugin(p)
        self.waiting = {}
        self.last = {}  # nick -> the last groupchat message from it, as XML
        self.add_event_handler('session_start', self.start)
        # Every message, with or without a body (groupchat_message needs one).
        self.register_handler(Callback('person', MatchXPath('{jabber:client}message'), self.on_message))

    async def start(self, _):
        self.send_presence()
        try:
            await self['xep_0045'].join_muc_wait(room, nick, maxstanzas=0, timeout=30)
        except Exception as e:  # a refused or timed-out join
            out({'error': 'join: %r' % e})
            self.disconnect()
            return
        out({'joined': True})
        asyncio.ensure_future(self.commands())

    def on_message(self, msg):
        if DEBUG:
            sys.stderr.write('in: %s\n' % msg)
        if msg['type'] == 'groupchat':
            self.last[msg['from'].resource] = str(msg)
        if msg['type'] != 'groupchat' or msg['from'].resource != nick:
            return
        key = msg['id']
        if key not in self.waiting and msg.xml.find('{jabber:client}subject') is not None:
            key = 'subject'  # Prosody reflects a subject change without its id
        fut = self.waiting.pop(key, None)
        if fut is None or fut.done():
            return
        sid = ''
        for el in msg.xml.findall('{urn:xmpp:sid:0}stanza-id'):
            if el.get('by') == room:
                sid = el.get('id')
        fut.set_result({'id': msg['id'], 'origin': msg['id'], 'stanza_id': sid,
                        'xml': str(msg)})

    def message(self):
        m = self.make_message(mto=room, mtype='groupchat')
        mid = uuid.uuid4().hex
        m['id'] = mid
        oid = ET.SubElement(m.xml, '{urn:xmpp:sid:0}origin-id')
        oid.set('id', mid)
        return m

    async def commands(self):
        loop = asyncio.get_event_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                self.disconnect()
                return
            c = json.loads(line)
            op = c['op']
            if op == 'quit':
                self.disconnect()
                return
            if op == 'last':
                out({'xml': self.last.get(c['nick'], '')})
                continue
            m = self.message()
            if op == 'send':
                m['body'] = c['body']
            elif op == 'correct':
                m['body'] = c['body']
                m['replace']['id'] = c['id']
            elif op == 'reply':
                quote = '> ' + c['quote'] + '\n'
                m['body'] = quote + c['body']
                r = ET.SubElement(m.xml, '{urn:xmpp:reply:0}reply')
                r.set('to', c['to'])
                r.set('id', c['id'])
                fb = ET.SubElement(m.xml, '{urn:xmpp:fallback:0}fallback')
                fb.set('for', 'urn:xmpp:reply:0')
                b = ET.SubElement(fb, '{urn:xmpp:fallback:0}body')
                b.set('start', '0')
                b.set('end', str(len(quote)))  # code points, as Python counts
            elif op == 'react':
                self['xep_0444'].set_reactions(m, c['id'], c['reactions'])
                m.enable('store')
            elif op == 'retract':
                # What XEP_0424.send_retraction builds, on our message.
                m['body'] = ('This person attempted to retract a previous message, '
                             'but your client does not support it.')
                m.enable('fallback')
                m['apply_to']['id'] = c['id']
                m['apply_to'].enable('retract')
                m.enable('store')
            elif op == 'oob':
                m['body'] = c.get('body', c['url'])
                m['oob']['url'] = c['url']
            elif op == 'subject':
                m['subject'] = c['subject']
            fut = loop.create_future()
            self.waiting['subject' if op == 'subject' else m['id']] = fut
            m.send()
            try:
                out(await asyncio.wait_for(fut, 20))
            except asyncio.TimeoutError:
                out({'error': 'no reflection of ' + op})


def out(v):
    sys.stdout.write(json.dumps(v) + '\n')
    sys.stdout.flush()


p = Person()
p.connect((host, port), force_starttls=False, disable_starttls=True)
p.add_event_handler('disconnected', lambda _: p.loop.stop())
p.loop.run_forever()
