package discovery

import (
	"github.com/hashicorp/serf/serf"
)

// memberEvent is one member's change, as the Handler is told about it.
type memberEvent struct {
	kind   serf.EventType
	member Member
}

// drain moves Serf's events into the queue as soon as they arrive. It never waits on the Handler: Serf
// sends with its member lock held, so a blocked reader would stall gossip for the whole node.
func (m *Membership) drain(events <-chan serf.Event) {
	for {
		select {
		case e := <-events:
			me, ok := e.(serf.MemberEvent)
			if !ok || m.handler == nil {
				continue // user events and queries are not used; with no handler only Members matters
			}
			for _, sm := range me.Members {
				if sm.Name == m.name {
					continue
				}
				m.events.Push(memberEvent{kind: me.Type, member: memberFromSerf(sm)})
			}
		case <-m.stop:
			return
		}
	}
}

// dispatch hands queued events to the Handler one at a time, in order, until Shutdown.
func (m *Membership) dispatch() {
	for {
		e, ok := m.events.Pop(m.stop)
		if !ok {
			return
		}
		m.deliver(e)
	}
}

func (m *Membership) deliver(e memberEvent) {
	id := e.member.ID
	switch e.kind {
	case serf.EventMemberJoin, serf.EventMemberUpdate:
		if e.member.RPCAddr == "" {
			m.logger.Warn("discovery: member has no valid RPC address; not reported", "member", id, "event", e.kind.String())
			return
		}
		if err := m.handler.Join(id, e.member.RPCAddr); err != nil {
			m.logger.Warn("discovery: handler failed on join", "member", id, "rpc_addr", e.member.RPCAddr, "err", err)
		}
	case serf.EventMemberLeave, serf.EventMemberFailed, serf.EventMemberReap:
		if err := m.handler.Leave(id); err != nil {
			m.logger.Warn("discovery: handler failed on leave", "member", id, "event", e.kind.String(), "err", err)
		}
	}
}
