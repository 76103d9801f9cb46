/*
 * ES|QL's REPLACE and RLIKE, evaluated the way Elasticsearch evaluates them, for
 * tests/unit/test_esql_regex_java.py. Run with Java's single-file source launcher:
 *
 *   java -cp lucene-core-<version>.jar tests/java/EsqlRegexCheck.java
 *
 * Line protocol (every string is the base64 of its UTF-8 bytes, so any text fits on one line):
 *   stdin, first line:  "replace <regex> <replacement>"  or  "rlike <pattern>"
 *   stdin, then:        one input string per line
 *   stdout, rlike only: "states utf32=<n> utf8=<m>" (the sizes of the two deterministic automata)
 *   stdout, then:       one line per input: the REPLACE result, or 1/0 for RLIKE
 * A pattern Elasticsearch would refuse (syntax, too complex to determinize) ends the program
 * with exit status 2 and the reason on stderr.
 *
 * What each step copies (elastic/elasticsearch, x-pack/plugin):
 * - REPLACE: esql/.../scalar/string/Replace.java: Pattern.compile on the constant regex, then
 *   safeReplace: utf8ToString, Matcher.find / appendReplacement / appendTail.
 * - RLIKE: esql-core/.../predicate/regex/RLikePattern.java: new RegExp(pattern, RegExp.ALL, 0),
 *   Operations.determinize(..., DEFAULT_DETERMINIZE_WORK_LIMIT), errors wrapped as in
 *   AbstractStringPattern.createAutomaton; esql/.../scalar/string/regex/RegexMatch.java (an empty
 *   pattern is Automata.makeEmptyString()); esql/.../scalar/string/AutomataMatch.java:
 *   determinize(UTF32ToUTF8.convert(a), DEFAULT_DETERMINIZE_WORK_LIMIT), new ByteRunAutomaton(a, true),
 *   run over the value's UTF-8 bytes.
 */

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.automaton.Automata;
import org.apache.lucene.util.automaton.Automaton;
import org.apache.lucene.util.automaton.ByteRunAutomaton;
import org.apache.lucene.util.automaton.Operations;
import org.apache.lucene.util.automaton.RegExp;
import org.apache.lucene.util.automaton.TooComplexToDeterminizeException;
import org.apache.lucene.util.automaton.UTF32ToUTF8;

public class EsqlRegexCheck {

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, StandardCharsets.US_ASCII);
        String headerLine = in.readLine();
        if (headerLine == null) {
            fail("no header line on stdin");
        }
        String[] header = headerLine.split(" ", -1);
        if (header[0].equals("replace") && header.length == 3) {
            replace(in, out, text(header[1]), text(header[2]));
        } else if (header[0].equals("rlike") && header.length == 2) {
            rlike(in, out, text(header[1]));
        } else {
            fail("header must be 'replace <regex> <replacement>' or 'rlike <pattern>', got: " + headerLine);
        }
        out.flush();
    }

    private static void replace(BufferedReader in, PrintStream out, String regex, String replacement) throws IOException {
        Pattern pattern = null;
        try {
            pattern = Pattern.compile(regex);
        } catch (PatternSyntaxException e) {
            fail("invalid REPLACE regex: " + e.getMessage());
        }
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            BytesRef result = safeReplace(new BytesRef(bytes(line)), pattern, replacement);
            out.println(Base64.getEncoder().encodeToString(BytesRef.deepCopyOf(result).bytes));
        }
    }

    /** Replace.safeReplace without its result-size limit (our inputs are a few kilobytes). */
    private static BytesRef safeReplace(BytesRef input, Pattern regex, String replacement) {
        String str = input.utf8ToString();
        Matcher m = regex.matcher(str);
        if (m.find() == false) {
            return input;
        }
        StringBuilder result = new StringBuilder(str.length() + replacement.length() + 8);
        do {
            m.appendReplacement(result, replacement);
        } while (m.find());
        m.appendTail(result);
        return new BytesRef(result.toString());
    }

    private static void rlike(BufferedReader in, PrintStream out, String pattern) throws IOException {
        Automaton utf32 = null;
        Automaton utf8 = null;
        try {
            utf32 = pattern.isEmpty()
                ? Automata.makeEmptyString()
                : Operations.determinize(new RegExp(pattern, RegExp.ALL, 0).toAutomaton(), Operations.DEFAULT_DETERMINIZE_WORK_LIMIT);
            utf8 = Operations.determinize(new UTF32ToUTF8().convert(utf32), Operations.DEFAULT_DETERMINIZE_WORK_LIMIT);
        } catch (TooComplexToDeterminizeException e) {
            fail("Pattern was too complex to determinize: " + e.getMessage());
        } catch (StackOverflowError e) {
            fail("Pattern nesting is too deep to evaluate");
        } catch (IllegalArgumentException e) {
            fail("invalid RLIKE pattern: " + e.getMessage());
        }
        ByteRunAutomaton run = new ByteRunAutomaton(utf8, true);
        out.println("states utf32=" + utf32.getNumStates() + " utf8=" + utf8.getNumStates());
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            byte[] value = bytes(line);
            out.println(run.run(value, 0, value.length) ? "1" : "0");
        }
    }

    private static byte[] bytes(String base64) {
        return Base64.getDecoder().decode(base64);
    }

    private static String text(String base64) {
        return new String(bytes(base64), StandardCharsets.UTF_8);
    }

    private static void fail(String message) {
        System.err.println("EsqlRegexCheck: " + message);
        System.exit(2);
    }
}
