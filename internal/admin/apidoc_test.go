package admin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestAPIDocumented keeps docs/API.md honest: every route this package
// registers (any Handle or HandleFunc call with a literal pattern, in any
// file) has a heading there, and every JSON field of its types is named
// there. It reads the source rather than a list kept by hand, so that a
// route or a field added anywhere in the package is caught.
func TestAPIDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes, fields []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(n.Args) != 2 {
					return true
				}
				if lit, ok := n.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					p, _ := strconv.Unquote(lit.Value)
					routes = append(routes, p)
				}
			case *ast.StructType:
				for _, fld := range n.Fields.List {
					if fld.Tag == nil {
						continue
					}
					tag, _ := strconv.Unquote(fld.Tag.Value)
					if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ","); name != "" && name != "-" {
						fields = append(fields, name)
					}
				}
			}
			return true
		})
	}
	if len(routes) < 13 || len(fields) < 50 {
		t.Fatalf("found %d routes and %d JSON fields in the source: the search is broken", len(routes), len(fields))
	}
	for _, p := range routes {
		// A pattern may carry its method ("POST /v1/x"): the heading
		// must name it with the path.
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = `(GET|POST|PUT|DELETE)`, p
		}
		// "/{$}" is ServeMux's exact "/": documented as GET /.
		path = strings.TrimSuffix(path, "{$}")
		heading := regexp.MustCompile("(?m)^#+ `" + method + " " + regexp.QuoteMeta(path) + "(\\?[^`]*)?`")
		if path == "/" && !heading.Match(doc) && strings.Contains(string(doc), "### Any other path") {
			continue // the catch-all that answers 404
		}
		if !heading.Match(doc) {
			t.Errorf("route %q is not documented in docs/API.md (a heading such as ### `GET %s`)", p, path)
		}
	}
	for _, f := range fields {
		if !strings.Contains(string(doc), "`"+f+"`") {
			t.Errorf("JSON field %q is not described in docs/API.md", f)
		}
	}
}
