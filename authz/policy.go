package authz

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
)

// The policy file is CSV, one rule a line, in the shape Casbin's own file
// adapter reads, so existing Casbin tooling can read it too:
//
//	# a comment
//	p, <subject>, <object>, <action>[, allow|deny]
//	g, <member>, <group>
//
// subject: a certificate common name, a group named by a "g" line, "*" for
// every subject, or "role:server" / "role:client" for every certificate of
// that role. object: a topic name, or a prefix ending in "*" ("orders.*"
// matches "orders.eu" but not "orders"; "*" matches every topic); "*" may only
// stand last. action: produce, consume, admin, replicate, or "*" for all. The
// effect defaults to allow; a deny rule overrides any allow, and anything no
// rule allows is denied. "g" lines put a name in a group; groups may not be
// roles, which only certificates give.
//
// defaultModel is the Casbin model those rules run under. A model file given
// in [Options.ModelFile] replaces it; it may change the matcher and the
// effect, but must keep the request (sub, role, obj, act), the policy
// (sub, obj, act, eft) and the role definition g, which is what authz feeds
// it.
const defaultModel = `
[request_definition]
r = sub, role, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "*" || p.sub == r.role || g(r.sub, p.sub)) && keyMatch(r.obj, p.obj) && (p.act == "*" || p.act == r.act)
`

// Action is what a subject does to an object.
type Action string

// The actions a policy can allow. A policy may also name "*" for all of them.
const (
	ActionProduce   Action = "produce"
	ActionConsume   Action = "consume"
	ActionAdmin     Action = "admin"
	ActionReplicate Action = "replicate"
)

var actions = []Action{ActionProduce, ActionConsume, ActionAdmin, ActionReplicate}

// rules is a parsed policy file: "p" rules of four fields (the effect filled
// in) and "g" rules of two.
type rules struct {
	p, g [][]string
}

// parsePolicy reads a policy file. Errors wrap ErrInvalidPolicy and name the
// file and line.
func parsePolicy(name string, data []byte) (rules, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = false

	var out rules
	seen := make(map[string]bool)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return rules{}, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, name, err)
		}
		line, _ := r.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		if err := checkRule(rec); err != nil {
			return rules{}, fmt.Errorf("%w: %s:%d: %v", ErrInvalidPolicy, name, line, err)
		}
		if rec[0] == "p" && len(rec) == 4 {
			rec = append(rec, "allow")
		}
		key := strings.Join(rec, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		if rec[0] == "p" {
			out.p = append(out.p, rec[1:])
		} else {
			out.g = append(out.g, rec[1:])
		}
	}
}

// checkRule checks one CSV record, its rule type first.
func checkRule(rec []string) error {
	switch rec[0] {
	case "p":
		if len(rec) != 4 && len(rec) != 5 {
			return fmt.Errorf("a p rule has 3 or 4 fields (subject, object, action[, effect]), not %d", len(rec)-1)
		}
		if err := checkPolicySubject(rec[1]); err != nil {
			return err
		}
		if err := checkObject(rec[2]); err != nil {
			return err
		}
		if rec[3] != "*" && !slices.Contains(actions, Action(rec[3])) {
			return fmt.Errorf("unknown action %q (want one of %v or *)", rec[3], actions)
		}
		if len(rec) == 5 && rec[4] != "allow" && rec[4] != "deny" {
			return fmt.Errorf("unknown effect %q (want allow or deny)", rec[4])
		}
		return nil
	case "g":
		if len(rec) != 3 {
			return fmt.Errorf("a g rule has 2 fields (member, group), not %d", len(rec)-1)
		}
		for _, name := range rec[1:] {
			if name == "" || name == "*" || strings.HasPrefix(name, rolePrefix) {
				return fmt.Errorf("group member or name %q must be a plain name: roles come only from certificates", name)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown rule type %q (want p or g)", rec[0])
}

func checkPolicySubject(sub string) error {
	switch {
	case sub == "":
		return errors.New("empty subject")
	case strings.HasPrefix(sub, rolePrefix):
		if sub != roleSubject(RoleServer) && sub != roleSubject(RoleClient) {
			return fmt.Errorf("unknown role subject %q (want %s or %s)", sub, roleSubject(RoleServer), roleSubject(RoleClient))
		}
	}
	return nil
}

func checkObject(obj string) error {
	switch i := strings.IndexByte(obj, '*'); {
	case obj == "":
		return errors.New("empty object")
	case i >= 0 && i != len(obj)-1:
		return fmt.Errorf("object %q: a wildcard * may only stand last", obj)
	}
	return nil
}

// roleSubject is how a role appears as a subject in the policy and in
// requests to the model.
func roleSubject(r Role) string {
	return rolePrefix + r.String()
}

// loadModel returns the built-in model, or the one in file.
func loadModel(file string) (model.Model, error) {
	if file == "" {
		return model.NewModelFromString(defaultModel)
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("authz: read model: %w", err)
	}
	m, err := model.NewModelFromString(string(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidModel, file, err)
	}
	if err := checkModel(m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidModel, file, err)
	}
	return m, nil
}

// checkModel checks that a model takes the requests and rules authz gives it.
func checkModel(m model.Model) error {
	for _, want := range []struct {
		sec    string
		fields []string
	}{
		{"r", []string{"sub", "role", "obj", "act"}},
		{"p", []string{"sub", "obj", "act", "eft"}},
	} {
		tokens := make([]string, len(want.fields))
		for i, f := range want.fields {
			tokens[i] = want.sec + "_" + f
		}
		if a, ok := m[want.sec][want.sec]; !ok || !slices.Equal(a.Tokens, tokens) {
			return fmt.Errorf("the model must define %s = %s", want.sec, strings.Join(want.fields, ", "))
		}
	}
	if _, ok := m["g"]["g"]; !ok {
		return errors.New("the model must define the role g = _, _")
	}
	return nil
}

// newEnforcer builds an enforcer over m holding rs. It is never changed
// afterwards, which is what makes concurrent Enforce calls safe.
func newEnforcer(m model.Model, rs rules, policyName string) (*casbin.Enforcer, error) {
	e, err := casbin.NewEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
	}
	if len(rs.p) > 0 {
		if err := e.GetModel().AddPolicies("p", "p", rs.p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, policyName, err)
		}
	}
	if len(rs.g) > 0 {
		if err := e.GetModel().AddPolicies("g", "g", rs.g); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, policyName, err)
		}
	}
	if err := e.BuildRoleLinks(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, policyName, err)
	}
	// A matcher that does not compile or evaluate only shows on Enforce:
	// try one request now, while the old policy is still in force.
	if _, err := e.Enforce("authz-probe", roleSubject(RoleClient), "authz-probe", string(ActionConsume)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModel, err)
	}
	return e, nil
}
