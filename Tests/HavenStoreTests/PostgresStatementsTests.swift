import Foundation
import Testing

@testable import HavenStore

/// What the PostgreSQL writer prepares, and how: its statements' text with
/// each placeholder cast to its argument's type, one prepared statement per
/// text and shape of arguments.
@Suite("PostgreSQL prepared statements")
struct PostgresStatementsTests {
    @Test(
        "placeholders are numbered and cast to their arguments' types; a NULL's is left to the statement; quoted text is untouched"
    )
    func typed() {
        let sql = "UPDATE t SET a = ?, b = ?, c = ?, d = ?, e = ?, f = ? WHERE note <> '?' AND id = ?"
        let values: [SQLValue] = [
            .integer(1), .text("x"), .blob(Data([1])), .bool(true), .real(0.5), .null, .text("id"),
        ]
        #expect(
            PostgresStatements.typed(sql, values)
                == "UPDATE t SET a = $1::int8, b = $2::text, c = $3::bytea, d = $4::bool, e = $5::float8, f = $6 WHERE note <> '?' AND id = $7::text"
        )
        #expect(PostgresStatements.typed("SELECT 1", []) == "SELECT 1")
    }

    @Test("one statement per text and shape of arguments")
    func keys() {
        let sql = "SELECT a FROM t WHERE b = ?"
        let text = PostgresStatements.key(sql, [.text("x")])
        #expect(PostgresStatements.key(sql, [.text("other value")]) == text)
        #expect(PostgresStatements.key(sql, [.null]) != text)
        #expect(PostgresStatements.key(sql, [.integer(1)]) != text)
        #expect(PostgresStatements.key("SELECT a FROM t WHERE c = ?", [.text("x")]) != text)
    }

    @Test("only single reads and writes of at most 64 arguments are prepared")
    func preparable() {
        #expect(PostgresStatements.preparable("SELECT 1", 0))
        #expect(PostgresStatements.preparable("\n  insert INTO t VALUES (?)", 1))
        #expect(PostgresStatements.preparable("UPDATE t SET a = ?", 64))
        #expect(PostgresStatements.preparable("DELETE FROM t", 0))
        #expect(!PostgresStatements.preparable("UPDATE t SET a = ?", 65))
        #expect(!PostgresStatements.preparable("BEGIN", 0))
        #expect(!PostgresStatements.preparable("COMMIT", 0))
        #expect(!PostgresStatements.preparable("SAVEPOINT haven_write", 0))
        #expect(!PostgresStatements.preparable("DECLARE c NO SCROLL CURSOR FOR SELECT 1", 0))
        #expect(!PostgresStatements.preparable("SELECT 1; SELECT 2", 0))
        #expect(!PostgresStatements.preparable("CREATE TABLE t (a int)", 0))
    }

    @Test("the writer counts every statement but a SELECT as one that may have changed its transaction")
    func effects() {
        #expect(StatementEffects.reads("SELECT kind, id FROM record WHERE id = ?"))
        #expect(StatementEffects.reads("\n  select 1"))
        #expect(!StatementEffects.reads("INSERT INTO change (body) VALUES (?) RETURNING sequence"))
        #expect(!StatementEffects.reads("UPDATE record SET body = ?"))
        #expect(!StatementEffects.reads("DELETE FROM idempotency WHERE createdAt < ?"))
        #expect(!StatementEffects.reads("WITH head AS (SELECT 1) INSERT INTO t SELECT * FROM head"))
        #expect(!StatementEffects.reads("DECLARE c NO SCROLL CURSOR FOR SELECT 1"))
        #expect(!StatementEffects.reads("SAVEPOINT haven_write"))
        #expect(!StatementEffects.reads("SELECTED"))
    }
}
