package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// documentedOperations returns "METHOD /path" for every operation in the
// document's paths.
func documentedOperations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatal("openapi.json has no paths")
	}
	ops := make(map[string]map[string]any)
	for path, item := range paths {
		pi, ok := item.(map[string]any)
		if !ok {
			t.Errorf("paths[%q] is not an object", path)
			continue
		}
		for _, m := range openAPIMethods {
			if op, ok := pi[m]; ok {
				o, ok := op.(map[string]any)
				if !ok {
					t.Errorf("paths[%q].%s is not an object", path, m)
					continue
				}
				ops[strings.ToUpper(m)+" "+path] = o
			}
		}
	}
	return ops
}

// registeredRoutes parses the package's non-test sources and returns the
// pattern of every HandleFunc/Handle call (except the catch-all "/").
// http.ServeMux cannot list its patterns, so the source is the record.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var routes []string
	sawRoutesFunc := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Name.Name == "routes" && fd.Recv != nil {
				sawRoutesFunc = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") || len(call.Args) != 2 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: %s called with a pattern that is not a string literal; this test cannot check it is documented",
					fset.Position(call.Pos()), sel.Sel.Name)
				return true
			}
			pat, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			if pat == "/" {
				return true // the catch-all 404
			}
			method, path, ok := strings.Cut(pat, " ")
			if !ok || method == "" || !strings.HasPrefix(path, "/") || strings.ToUpper(method) != method {
				t.Errorf("%s: pattern %q has no method; register routes as \"METHOD /path\" so they can be documented",
					fset.Position(lit.Pos()), pat)
				return true
			}
			routes = append(routes, method+" "+path)
			return true
		})
	}
	if !sawRoutesFunc {
		t.Fatal("found no routes method in the package sources")
	}
	if len(routes) < 5 || !slices.Contains(routes, "GET /livez") {
		t.Fatalf("found implausibly few routes in the package sources: %q", routes)
	}
	return routes
}

func TestOpenAPIVersion(t *testing.T) {
	doc := loadOpenAPI(t)
	v, _ := doc["openapi"].(string)
	if !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs a title and a version: %v", info)
	}
}

// TestOpenAPIRoutesDocumented fails when a route is registered without
// being documented, or documented without being registered.
func TestOpenAPIRoutesDocumented(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := documentedOperations(t, doc)
	routes := registeredRoutes(t)

	registered := make(map[string]bool)
	for _, r := range routes {
		if registered[r] {
			t.Errorf("route %q is registered twice", r)
		}
		registered[r] = true
		if _, ok := ops[r]; !ok {
			t.Errorf("route %q is registered in routes() but not documented in openapi.json", r)
		}
	}
	for op := range ops {
		if !registered[op] {
			t.Errorf("operation %q is documented in openapi.json but no such route is registered", op)
		}
	}

	// Cross-check against the real mux: every documented operation must
	// reach the handler registered with exactly that pattern (not the
	// catch-all). A Gatherer is set so the optional /metrics is registered.
	s := New(Config{Gatherer: prometheus.NewRegistry()})
	fill := regexp.MustCompile(`\{[^/}]+\}`)
	for op := range ops {
		method, path, _ := strings.Cut(op, " ")
		req := httptest.NewRequest(method, fill.ReplaceAllString(path, "x1"), nil)
		if _, pattern := s.mux.Handler(req); pattern != op {
			t.Errorf("documented %q is served by mux pattern %q", op, pattern)
		}
	}
}

// TestOpenAPIOperations checks each operation's shape: a unique
// operationId, at least one response, declared path parameters, and
// security requirements naming defined schemes.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := documentedOperations(t, doc)
	comps, _ := doc["components"].(map[string]any)
	schemes, _ := comps["securitySchemes"].(map[string]any)
	paths := doc["paths"].(map[string]any)

	checkSecurity := func(where string, v any) {
		reqs, ok := v.([]any)
		if !ok {
			t.Errorf("%s: security is not an array", where)
			return
		}
		for _, r := range reqs {
			m, ok := r.(map[string]any)
			if !ok {
				t.Errorf("%s: security requirement %v is not an object", where, r)
				continue
			}
			for name := range m {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s: security scheme %q is not defined in components.securitySchemes", where, name)
				}
			}
		}
	}
	if sec, ok := doc["security"]; ok {
		checkSecurity("document", sec)
	}

	ids := make(map[string]string)
	placeholder := regexp.MustCompile(`\{([^/}]+)\}`)
	for key, op := range ops {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", key)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s: operationId %q already used by %s", key, id, prev)
		} else {
			ids[id] = key
		}

		resp, _ := op["responses"].(map[string]any)
		if len(resp) == 0 {
			t.Errorf("%s: no responses", key)
		}
		for code, r := range resp {
			if code != "default" && !regexp.MustCompile(`^[1-5]([0-9]{2}|XX)$`).MatchString(code) {
				t.Errorf("%s: response key %q is not a status code", key, code)
			}
			if rm, _ := r.(map[string]any); rm == nil {
				t.Errorf("%s: response %s is not an object", key, code)
			}
		}

		if sec, ok := op["security"]; ok {
			checkSecurity(key, sec)
		}

		// Every {param} in the path is declared as an in: path parameter,
		// on the operation or its path item, and nothing else is.
		_, path, _ := strings.Cut(key, " ")
		want := make(map[string]bool)
		for _, m := range placeholder.FindAllStringSubmatch(path, -1) {
			want[m[1]] = true
		}
		got := make(map[string]bool)
		var params []any
		if pi, ok := paths[path].(map[string]any); ok {
			if ps, ok := pi["parameters"].([]any); ok {
				params = append(params, ps...)
			}
		}
		if ps, ok := op["parameters"].([]any); ok {
			params = append(params, ps...)
		}
		for _, p := range params {
			pm, ok := resolve(doc, p).(map[string]any)
			if !ok {
				t.Errorf("%s: parameter %v does not resolve to an object", key, p)
				continue
			}
			if pm["in"] == "path" {
				name, _ := pm["name"].(string)
				got[name] = true
				if pm["required"] != true {
					t.Errorf("%s: path parameter %q must be required", key, name)
				}
			}
		}
		for name := range want {
			if !got[name] {
				t.Errorf("%s: path parameter {%s} is not declared", key, name)
			}
		}
		for name := range got {
			if !want[name] {
				t.Errorf("%s: declares path parameter %q that is not in the path", key, name)
			}
		}
	}
}

// resolve follows a local $ref (one level at a time) and returns the
// object it points to, or v itself when it is not a reference.
func resolve(doc map[string]any, v any) any {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		target, ok := lookupPointer(doc, ref)
		if !ok {
			return nil
		}
		v = target
	}
	return nil
}

// lookupPointer resolves a local reference such as
// "#/components/schemas/Problem" (RFC 6901 JSON pointer).
func lookupPointer(doc map[string]any, ref string) (any, bool) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, false
	}
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	var cur any = doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// TestOpenAPIRefsResolve checks that every $ref in the document is local
// and points to something that exists, and that error responses use the
// shared Problem schema as application/problem+json.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	n := 0
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"]; ok {
				s, ok := ref.(string)
				if !ok {
					t.Errorf("%s: $ref is not a string", where)
				} else if !strings.HasPrefix(s, "#/components/") {
					t.Errorf("%s: $ref %q does not point into components", where, s)
				} else if _, ok := lookupPointer(doc, s); !ok {
					t.Errorf("%s: $ref %q does not resolve", where, s)
				}
				n++
			}
			for k, e := range x {
				walk(where+"/"+k, e)
			}
		case []any:
			for i, e := range x {
				walk(where+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", doc)
	if n == 0 {
		t.Error("openapi.json uses no $ref; shared schemas belong in components")
	}

	if _, ok := lookupPointer(doc, "#/components/schemas/Problem"); !ok {
		t.Fatal("components.schemas.Problem is missing")
	}
	for key, op := range documentedOperations(t, doc) {
		resp, _ := op["responses"].(map[string]any)
		for code, r := range resp {
			if code < "400" {
				continue
			}
			rm, _ := resolve(doc, r).(map[string]any)
			content, _ := rm["content"].(map[string]any)
			pj, _ := content["application/problem+json"].(map[string]any)
			schema, _ := pj["schema"].(map[string]any)
			if schema["$ref"] != "#/components/schemas/Problem" {
				t.Errorf("%s: response %s is not application/problem+json with the Problem schema", key, code)
			}
		}
	}
}
